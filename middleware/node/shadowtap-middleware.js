'use strict';
/**
 * Helpers for writing shadowtap (and GoReplay) middlewares in Node 18+, no dependencies.
 *
 * A middleware reads one hex-encoded message per line on stdin and writes the messages it
 * wants to pass on, in the same encoding, to stdout. See middleware/README.md.
 *
 *   const { run, REQUEST } = require('./shadowtap-middleware');
 *   run((msg) => {
 *     if (msg.kind === REQUEST) msg.setHeader('X-Shadow', '1');
 *     return msg; // return null to drop the message
 *   });
 *
 * A Message is its header line (a Buffer, kept byte-exact) plus its payload (a Buffer);
 * kind, id, timestamp and latency are views of the header line, and assigning to them
 * rewrites that field only. Timestamps and latencies are BigInts (nanoseconds exceed 2^53).
 */

const REQUEST = 1;
const RESPONSE = 2;
const REPLAYED_RESPONSE = 3;

const INTEGER = /^[+-]?[0-9]+$/;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const HEAD_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const NEWLINE = 0x0a;

class ProtocolError extends Error {}

// --- header line ---------------------------------------------------------------------------

/** Fields of a header line (strings), and the "\r" it may end with. */
function splitHeaderLine(header) {
  const text = header.toString('latin1');
  return text.endsWith('\r')
    ? { fields: text.slice(0, -1).split(' '), cr: '\r' }
    : { fields: text.split(' '), cr: '' };
}

function parseInteger(name, field) {
  if (!INTEGER.test(field) || BigInt(field) < I64_MIN || BigInt(field) > I64_MAX) {
    throw new ProtocolError(`${name} ${JSON.stringify(field)} is not a 64-bit integer`);
  }
  return BigInt(field);
}

/** Throws ProtocolError unless shadowtap would accept this header line. */
function checkHeaderLine(header) {
  if (header.includes(NEWLINE)) throw new ProtocolError('header line contains a newline');
  if (header.some((b) => b > 0x7f)) throw new ProtocolError('header line is not ASCII');
  const { fields } = splitHeaderLine(header);
  if (fields.length < 3 || fields.slice(0, 3).some((f) => f === '')) {
    throw new ProtocolError('header line needs at least 3 fields: <kind> <id> <timestamp>');
  }
  if (!/^[0-9]$/.test(fields[0])) {
    throw new ProtocolError(`kind ${JSON.stringify(fields[0])} is not a single digit`);
  }
  parseInteger('timestamp', fields[2]);
  if (fields.length > 3 && fields[3] !== '') parseInteger('latency', fields[3]);
}

function fieldText(value) {
  const text = String(value);
  if (text === '' || /[ \u0080-\uffff]/.test(text)) {
    throw new ProtocolError(`header field ${JSON.stringify(text)} must be non-empty ASCII without spaces`);
  }
  return text;
}

/** One message: `headerLine` (Buffer, the header line without its "\n") and `payload` (Buffer). */
class Message {
  constructor(headerLine, payload = Buffer.alloc(0)) {
    this.headerLine = headerLine;
    this.payload = Buffer.from(payload);
  }

  /** A message with a fresh GoReplay header line: "<kind> <id> <timestamp> [<latency>]". */
  static build(kind, id, timestamp, latency = null, payload = Buffer.alloc(0)) {
    const fields = [kind, id, timestamp].concat(latency === null ? [] : [latency]);
    return new Message(Buffer.from(fields.map(fieldText).join(' '), 'latin1'), payload);
  }

  /** The header line exactly as received, without its "\n". */
  get headerLine() {
    return this._headerLine;
  }

  set headerLine(headerLine) {
    const bytes = Buffer.from(headerLine);
    checkHeaderLine(bytes);
    this._headerLine = bytes;
  }

  _field(index) {
    const { fields } = splitHeaderLine(this._headerLine);
    return index < fields.length && fields[index] !== '' ? fields[index] : null;
  }

  _setField(index, value) {
    const { fields, cr } = splitHeaderLine(this._headerLine);
    fields[index] = fieldText(value);
    this.headerLine = Buffer.from(fields.join(' ') + cr, 'latin1');
  }

  /** 1 = request, 2 = original response, 3 = replayed response. */
  get kind() {
    return Number(this._field(0));
  }

  set kind(kind) {
    this._setField(0, kind);
  }

  /** The id token that ties a request to its responses. */
  get id() {
    return this._field(1);
  }

  set id(id) {
    this._setField(1, id);
  }

  /** Nanoseconds since the Unix epoch, as a BigInt. */
  get timestamp() {
    return BigInt(this._field(2));
  }

  set timestamp(timestamp) {
    this._setField(2, BigInt(timestamp));
  }

  /** Nanoseconds as a BigInt, or null when the header line has only 3 fields. */
  get latency() {
    const field = this._field(3);
    return field === null ? null : BigInt(field);
  }

  set latency(latency) {
    this._setField(3, BigInt(latency));
  }

  /** Value of the first HTTP header called `name` (any case), or null. */
  getHeader(name) {
    return getHeader(this.payload, name);
  }

  /** Replaces the first `name` header's value, or inserts it after the start line. */
  setHeader(name, value) {
    this.payload = setHeader(this.payload, name, value);
  }

  /** Removes every `name` header; returns true if there was one. */
  deleteHeader(name) {
    const before = this.payload;
    this.payload = deleteHeader(before, name);
    return !this.payload.equals(before);
  }

  /** The request method ("GET"), or null for a response. */
  get method() {
    return requestMethod(this.payload);
  }

  /** The request target ("/a?b=c"), or null for a response. */
  get path() {
    return requestPath(this.payload);
  }

  /** The response status code (200), or null for a request. */
  get status() {
    return responseStatus(this.payload);
  }

  /** The bytes after the HTTP head, as on the wire (not de-chunked). */
  get body() {
    return getBody(this.payload);
  }

  /** Replaces the body and sets Content-Length (dropping Transfer-Encoding). */
  setBody(body) {
    this.payload = setBody(this.payload, body);
  }
}

// --- line codec ----------------------------------------------------------------------------

function stripLineEnd(line) {
  let end = line.length;
  if (end > 0 && line[end - 1] === NEWLINE) end--;
  if (end > 0 && line[end - 1] === 0x0d) end--;
  return line.subarray(0, end);
}

/** Decodes one protocol line (Buffer or string, with or without "\n"; either hex case). */
function decodeLine(line) {
  const hex = stripLineEnd(Buffer.from(line));
  if (hex.length === 0) throw new ProtocolError('empty line');
  if (hex.length % 2) throw new ProtocolError(`odd number of hex digits (${hex.length})`);
  const text = hex.toString('latin1');
  const raw = Buffer.from(text, 'hex'); // stops quietly at the first non-hex pair
  if (raw.length * 2 !== text.length) {
    const column = text.search(/[^0-9a-fA-F]/) + 1;
    throw new ProtocolError(`byte ${JSON.stringify(text[column - 1])} at column ${column} is not a hex digit`);
  }
  const newline = raw.indexOf(NEWLINE);
  if (newline < 0) throw new ProtocolError('no header line (no newline in the decoded message)');
  return new Message(raw.subarray(0, newline), raw.subarray(newline + 1));
}

/** The protocol line for a message: lowercase hex of header + "\n" + payload, then "\n". */
function encodeLine(msg) {
  const raw = Buffer.concat([msg.headerLine, Buffer.from('\n'), msg.payload]);
  return raw.toString('hex') + '\n';
}

/** Splits a byte stream into lines; holds partial lines across chunks without re-copying. */
function lineSplitter(onLine) {
  let pending = [];
  return {
    push(chunk) {
      let start = 0;
      let newline;
      while ((newline = chunk.indexOf(NEWLINE, start)) !== -1) {
        pending.push(chunk.subarray(start, newline));
        onLine(pending.length === 1 ? pending[0] : Buffer.concat(pending));
        pending = [];
        start = newline + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    },
    end() {
      if (pending.length) onLine(Buffer.concat(pending));
      pending = [];
    },
  };
}

/**
 * Calls handler(msg) for each line of stdin and writes what it returns (null/undefined drops).
 * Each line is handed to stdout at once (Node keeps no buffer of its own); stdin pauses while
 * stdout is backed up. Undecodable lines are reported on stderr and skipped; blank lines are
 * ignored. The process ends when stdin does and stdout is drained.
 */
function run(handler, input = process.stdin, output = process.stdout) {
  let number = 0;
  let backedUp = false;
  const splitter = lineSplitter((line) => {
    number++;
    if (stripLineEnd(line).length === 0) return;
    let msg;
    try {
      msg = decodeLine(line);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      process.stderr.write(`shadowtap-middleware: line ${number} skipped: ${err.message}\n`);
      return;
    }
    const result = handler(msg);
    if (result !== null && result !== undefined) {
      if (!output.write(encodeLine(result))) backedUp = true;
    }
  });
  output.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0); // the reader is gone: nothing left to do
  });
  input.on('data', (chunk) => {
    splitter.push(chunk);
    if (backedUp) {
      backedUp = false;
      input.pause();
      output.once('drain', () => input.resume());
    }
  });
  input.on('end', () => splitter.end());
}

// --- HTTP/1.x payload helpers --------------------------------------------------------------
// The head is everything before the first "\r\n\r\n": the start line, then one header per
// line. A payload without that blank line (cut short) is all head and has no body.

function splitLines(buffer) {
  const lines = [];
  let start = 0;
  let end;
  while ((end = buffer.indexOf(CRLF, start)) !== -1) {
    lines.push(buffer.subarray(start, end));
    start = end + CRLF.length;
  }
  lines.push(buffer.subarray(start));
  return lines;
}

function splitHead(payload) {
  const end = payload.indexOf(HEAD_END);
  if (end < 0) return { lines: splitLines(payload), body: null };
  return { lines: splitLines(payload.subarray(0, end)), body: payload.subarray(end + HEAD_END.length) };
}

function joinHead(lines, body) {
  const parts = [];
  lines.forEach((line, i) => parts.push(i ? CRLF : Buffer.alloc(0), line));
  if (body !== null) parts.push(HEAD_END, body);
  return Buffer.concat(parts);
}

/** Strings are latin1 (one byte per char, as getHeader returns them); pass a Buffer for raw bytes. */
function toBytes(text) {
  if (Buffer.isBuffer(text)) return text;
  const string = String(text);
  if (/[^\x00-\xff]/.test(string)) throw new Error('header text beyond latin1: pass a Buffer instead');
  return Buffer.from(string, 'latin1');
}

function asciiLower(buffer) {
  return Buffer.from(buffer.map((b) => (b >= 0x41 && b <= 0x5a ? b + 32 : b)));
}

function isNamed(line, name) {
  const colon = line.indexOf(':');
  return colon >= 0 && asciiLower(line.subarray(0, colon)).equals(asciiLower(name));
}

function checkHeaderText(name, value) {
  const breaks = (b) => b.includes(0x0d) || b.includes(NEWLINE);
  if (name.length === 0 || breaks(name) || name.includes(':') || breaks(value)) {
    throw new Error("header name/value must not contain CR or LF (or ':' in the name)");
  }
}

/** Value of the first header called `name` (any case), spaces trimmed, as a latin1 string; or null. */
function getHeader(payload, name) {
  const wanted = toBytes(name);
  const line = splitHead(payload).lines.slice(1).find((l) => isNamed(l, wanted));
  if (!line) return null;
  return line.subarray(line.indexOf(':') + 1).toString('latin1').replace(/^[ \t]+|[ \t]+$/g, '');
}

/**
 * Payload with header `name` set to `value`. The first line whose name matches (any case)
 * becomes "<its name>: <value>"; without one, "<name>: <value>\r\n" is inserted right after
 * the start line. Nothing else changes.
 */
function setHeader(payload, name, value) {
  const [nameBytes, valueBytes] = [toBytes(name), toBytes(value)];
  checkHeaderText(nameBytes, valueBytes);
  const { lines, body } = splitHead(payload);
  const index = lines.findIndex((l, i) => i > 0 && isNamed(l, nameBytes));
  if (index > 0) {
    const line = lines[index];
    lines[index] = Buffer.concat([line.subarray(0, line.indexOf(':')), Buffer.from(': '), valueBytes]);
  } else {
    lines.splice(1, 0, Buffer.concat([nameBytes, Buffer.from(': '), valueBytes]));
  }
  return joinHead(lines, body);
}

/** Payload without any header called `name` (any case). */
function deleteHeader(payload, name) {
  const wanted = toBytes(name);
  const { lines, body } = splitHead(payload);
  return joinHead(lines.filter((l, i) => i === 0 || !isNamed(l, wanted)), body);
}

function startLineParts(payload) {
  const end = payload.indexOf(CRLF);
  return payload.subarray(0, end < 0 ? payload.length : end).toString('latin1').split(' ');
}

/** "GET" for "GET /x HTTP/1.1"; null for a response. */
function requestMethod(payload) {
  const [method] = startLineParts(payload);
  return method === '' || method.startsWith('HTTP/') ? null : method;
}

/** "/x?y" for "GET /x?y HTTP/1.1"; null for a response or a start line without target. */
function requestPath(payload) {
  const parts = startLineParts(payload);
  return parts[0].startsWith('HTTP/') || parts.length < 2 ? null : parts[1];
}

/** 200 for "HTTP/1.1 200 OK"; null for a request. */
function responseStatus(payload) {
  const parts = startLineParts(payload);
  if (!parts[0].startsWith('HTTP/') || parts.length < 2 || !/^[0-9]+$/.test(parts[1])) return null;
  return Number(parts[1]);
}

/** The bytes after the head's blank line (empty when there is none). */
function getBody(payload) {
  return splitHead(payload).body || Buffer.alloc(0);
}

/**
 * Payload with a new body (a Buffer, or a string written as UTF-8) and "Content-Length: <len>"
 * set; Transfer-Encoding is removed.
 */
function setBody(payload, body) {
  const bodyBytes = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
  const { lines } = splitHead(payload);
  while (lines.length > 1 && lines[lines.length - 1].length === 0) lines.pop(); // a head cut short
  let head = joinHead(lines, null);
  head = deleteHeader(head, 'Transfer-Encoding');
  head = setHeader(head, 'Content-Length', String(bodyBytes.length));
  return Buffer.concat([head, HEAD_END, bodyBytes]);
}

module.exports = {
  REQUEST,
  RESPONSE,
  REPLAYED_RESPONSE,
  ProtocolError,
  Message,
  decodeLine,
  encodeLine,
  lineSplitter,
  run,
  getHeader,
  setHeader,
  deleteHeader,
  requestMethod,
  requestPath,
  responseStatus,
  getBody,
  setBody,
};
