'use strict';
// Unit tests for shadowtap-middleware.js (run: node --test middleware/node/).
const test = require('node:test');
const assert = require('node:assert');
const { PassThrough } = require('node:stream');
const mw = require('./shadowtap-middleware');

const GET = Buffer.from('GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n');
const POST = Buffer.from('POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n\x00\xff\r\n', 'latin1');
const lineOf = (raw) => Buffer.from(raw, 'latin1').toString('hex') + '\n';
const text = (buffer) => buffer.toString('latin1');

test('line round trip is byte exact', () => {
  const line = lineOf(Buffer.concat([Buffer.from('1 abc 1 0\n'), POST]));
  const msg = mw.decodeLine(line);
  assert.deepStrictEqual([msg.kind, msg.id, msg.timestamp, msg.latency], [1, 'abc', 1n, 0n]);
  assert.ok(msg.payload.equals(POST));
  assert.strictEqual(mw.encodeLine(msg), line);
});

test('upper-case hex, CRLF line ends, 3 and 6 fields', () => {
  const upper = lineOf('2 id 1700000000123456789\nHTTP/1.1 200 OK\r\n\r\n').toUpperCase().trim() + '\r\n';
  const msg = mw.decodeLine(upper);
  assert.strictEqual(msg.status, 200);
  assert.strictEqual(msg.timestamp, 1700000000123456789n);
  assert.strictEqual(msg.latency, null);
  const extra = mw.decodeLine(lineOf('3 a 5 6 extra x\n'));
  extra.id = 'b';
  assert.strictEqual(text(extra.headerLine), '3 b 5 6 extra x');
  msg.latency = 9;
  assert.strictEqual(text(msg.headerLine), '2 id 1700000000123456789 9');
});

test('bad lines are rejected', () => {
  for (const line of ['', 'abc', 'zz', '4142', lineOf('x a 1\n'), lineOf('1 a b\n'), lineOf('1 a\n'),
    lineOf('1  1 2\n'), lineOf('1 a 99999999999999999999\n'), 'a'.repeat(10) + 'zz']) {
    assert.throws(() => mw.decodeLine(line), mw.ProtocolError, line);
  }
});

test('build', () => {
  assert.strictEqual(text(mw.Message.build(1, 'abc', 10n, 20).headerLine), '1 abc 10 20');
  assert.strictEqual(text(mw.Message.build(2, 'abc', 10).headerLine), '2 abc 10');
});

test('header helpers', () => {
  assert.strictEqual(mw.getHeader(Buffer.from('GET / HTTP/1.1\r\nhOsT: \t y \r\n\r\n'), 'Host'), 'y');
  assert.strictEqual(mw.getHeader(GET, 'Cookie'), null);
  assert.strictEqual(mw.getHeader(Buffer.from('GET / HTTP/1.1\r\n\r\nHost: body'), 'Host'), null);
  const twice = Buffer.from('GET / HTTP/1.1\r\nx-a:1\r\nX-A: 2\r\n\r\nbody');
  assert.strictEqual(text(mw.setHeader(twice, 'X-A', 'new')), 'GET / HTTP/1.1\r\nx-a: new\r\nX-A: 2\r\n\r\nbody');
  assert.strictEqual(text(mw.setHeader(GET, 'X-New', 'v')),
    'GET /a?b=c HTTP/1.1\r\nX-New: v\r\nHost: x\r\nAccept: */*\r\n\r\n');
  assert.strictEqual(text(mw.setHeader(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'A', 'b')), 'GET / HTTP/1.1\r\nA: b\r\n\r\n');
  assert.throws(() => mw.setHeader(GET, 'X', 'a\r\nEvil: 1'));
  const many = Buffer.from('GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\na: 3\r\n\r\n');
  assert.strictEqual(text(mw.deleteHeader(many, 'A')), 'GET / HTTP/1.1\r\nB: 2\r\n\r\n');
});

test('start line and body', () => {
  assert.deepStrictEqual([mw.requestMethod(GET), mw.requestPath(GET), mw.responseStatus(GET)], ['GET', '/a?b=c', null]);
  assert.strictEqual(mw.requestMethod(Buffer.from('HTTP/1.0 404 Not Found\r\n\r\n')), null);
  assert.strictEqual(text(mw.getBody(POST)), '\x00\xff\r\n');
  assert.strictEqual(mw.getBody(Buffer.from('GET / HTTP/1.1\r\nHost: cut')).length, 0);
  const chunked = Buffer.from('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n');
  assert.strictEqual(text(mw.setBody(chunked, 'xyz')), 'POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz');
});

test('message methods', () => {
  const msg = new mw.Message(Buffer.from('1 a 1 0'), GET);
  msg.setHeader('Host', 'z');
  assert.strictEqual(msg.getHeader('host'), 'z');
  assert.strictEqual(msg.deleteHeader('Accept'), true);
  assert.strictEqual(msg.deleteHeader('Accept'), false);
  msg.setBody(Buffer.from('hi'));
  assert.strictEqual(text(msg.payload), 'GET /a?b=c HTTP/1.1\r\nContent-Length: 2\r\nHost: z\r\n\r\nhi');
});

test('lines split across chunks are joined', () => {
  const lines = [];
  const splitter = mw.lineSplitter((line) => lines.push(text(line)));
  ['ab', 'c\nd', '', 'e\n\nf', 'g'].forEach((chunk) => splitter.push(Buffer.from(chunk)));
  splitter.end();
  assert.deepStrictEqual(lines, ['abc', 'de', '', 'fg']);
});

test('run emits, drops and skips', async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  const kept = lineOf(Buffer.concat([Buffer.from('1 a 1 0\n'), GET]));
  mw.run((msg) => (msg.kind === 1 ? msg : null), input, output);
  input.end(kept + '\n' + lineOf('2 a 1 0\nHTTP/1.1 200 OK\r\n\r\n'));
  await new Promise((resolve) => input.on('end', resolve));
  assert.strictEqual(output.read().toString(), kept);
});
