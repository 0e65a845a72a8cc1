#!/usr/bin/env node
'use strict';
// Passes every message on unchanged.
//   shadowtap --input-file in.gor --middleware "node middleware/node/echo.js" --output-stdout
const { run } = require('./shadowtap-middleware');

run((msg) => msg);
