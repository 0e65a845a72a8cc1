#!/usr/bin/env node
'use strict';
// Sets header NAME to VALUE on every request (kind 1); passes everything else unchanged.
//   shadowtap --input-file in.gor \
//     --middleware "node middleware/node/rewrite-header.js X-Shadow yes" --output-stdout
const { REQUEST, run, setHeader } = require('./shadowtap-middleware');

const args = process.argv.slice(2);
if (args.length !== 2) {
  process.stderr.write('usage: rewrite-header.js NAME VALUE\n');
  process.exit(2);
}
const [name, value] = args.map((arg) => Buffer.from(arg, 'utf8')); // the bytes as typed
try {
  setHeader(Buffer.from('GET / HTTP/1.1'), name, value);
} catch (err) {
  process.stderr.write(`rewrite-header.js: ${err.message}\n`);
  process.exit(2);
}

run((msg) => {
  if (msg.kind === REQUEST) msg.setHeader(name, value);
  return msg;
});
