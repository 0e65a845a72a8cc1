"""Helpers for writing shadowtap (and GoReplay) middlewares in Python 3.8+, stdlib only.

A middleware reads one hex-encoded message per line on stdin and writes the messages
it wants to pass on, in the same encoding, to stdout. See middleware/README.md.

    from shadowtap_middleware import run

    def handle(msg):
        if msg.kind == 1:
            msg.set_header("X-Shadow", "1")
        return msg          # return None to drop the message

    run(handle)

A Message is its header line (kept byte-exact) plus its payload; kind, id, timestamp
and latency are views of the header line, and assigning to them rewrites that field only.
"""

import binascii
import os
import re
import sys

__all__ = [
    "REQUEST",
    "RESPONSE",
    "REPLAYED_RESPONSE",
    "ProtocolError",
    "Message",
    "decode_line",
    "encode_line",
    "run",
    "get_header",
    "set_header",
    "delete_header",
    "request_method",
    "request_path",
    "response_status",
    "get_body",
    "set_body",
]

REQUEST = 1
RESPONSE = 2
REPLAYED_RESPONSE = 3

_INTEGER = re.compile(rb"[+-]?[0-9]+\Z")
_NOT_HEX = re.compile(rb"[^0-9a-fA-F]")
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_HEAD_END = b"\r\n\r\n"
_CRLF = b"\r\n"


class ProtocolError(ValueError):
    """A line or header line that does not follow the middleware protocol."""


# --- header line -------------------------------------------------------------------------


def _split_header_line(header):
    """Fields of a header line, and the "\\r" it may end with (kept when rewriting)."""
    if header.endswith(b"\r"):
        return header[:-1].split(b" "), b"\r"
    return header.split(b" "), b""


def _parse_integer(name, field):
    if not _INTEGER.match(field) or not _I64_MIN <= int(field) <= _I64_MAX:
        raise ProtocolError("%s %r is not a 64-bit integer" % (name, field.decode("latin-1")))
    return int(field)


def _check_header_line(header):
    """Raises ProtocolError unless shadowtap would accept this header line."""
    if b"\n" in header:
        raise ProtocolError("header line contains a newline")
    if not header.isascii():
        raise ProtocolError("header line is not ASCII")
    fields, _ = _split_header_line(header)
    if len(fields) < 3 or not all(fields[:3]):
        raise ProtocolError("header line needs at least 3 fields: <kind> <id> <timestamp>")
    if len(fields[0]) != 1 or not fields[0].isdigit():
        raise ProtocolError("kind %r is not a single digit" % fields[0].decode())
    _parse_integer("timestamp", fields[2])
    if len(fields) > 3 and fields[3]:
        _parse_integer("latency", fields[3])


def _field_bytes(value):
    text = value if isinstance(value, bytes) else str(value).encode("ascii")
    if not text or b" " in text:
        raise ProtocolError("header field %r must be non-empty ASCII without spaces" % (value,))
    return text


class Message:
    """One message: header_line (bytes, without its "\\n") and the payload (bytes)."""

    __slots__ = ("_header_line", "payload")

    def __init__(self, header_line, payload=b""):
        self.header_line = header_line
        self.payload = bytes(payload)

    @classmethod
    def build(cls, kind, id, timestamp, latency=None, payload=b""):
        """A message with a fresh GoReplay header line: "<kind> <id> <timestamp> [<latency>]"."""
        fields = [kind, id, timestamp] + ([] if latency is None else [latency])
        return cls(b" ".join(_field_bytes(f) for f in fields), payload)

    @property
    def header_line(self):
        """The header line exactly as received, without its "\\n"."""
        return self._header_line

    @header_line.setter
    def header_line(self, header_line):
        header_line = bytes(header_line)
        _check_header_line(header_line)
        self._header_line = header_line

    def _field(self, index):
        fields, _ = _split_header_line(self._header_line)
        return fields[index] if index < len(fields) and fields[index] else None

    def _set_field(self, index, value):
        fields, cr = _split_header_line(self._header_line)
        if index == len(fields):
            fields.append(b"")
        fields[index] = _field_bytes(value)
        self.header_line = b" ".join(fields) + cr

    @property
    def kind(self):
        """1 = request, 2 = original response, 3 = replayed response."""
        return int(self._field(0))

    @kind.setter
    def kind(self, kind):
        self._set_field(0, kind)

    @property
    def id(self):
        """The id token that ties a request to its responses."""
        return self._field(1).decode("ascii")

    @id.setter
    def id(self, id):
        self._set_field(1, id)

    @property
    def timestamp(self):
        """Nanoseconds since the Unix epoch."""
        return int(self._field(2))

    @timestamp.setter
    def timestamp(self, timestamp):
        self._set_field(2, int(timestamp))

    @property
    def latency(self):
        """Nanoseconds, or None when the header line has only 3 fields."""
        field = self._field(3)
        return None if field is None else int(field)

    @latency.setter
    def latency(self, latency):
        self._set_field(3, int(latency))

    def get_header(self, name):
        """Value of the first HTTP header called `name` (any case), or None."""
        return get_header(self.payload, name)

    def set_header(self, name, value):
        """Replaces the first `name` header's value, or inserts it after the start line."""
        self.payload = set_header(self.payload, name, value)

    def delete_header(self, name):
        """Removes every `name` header; returns True if there was one."""
        before = self.payload
        self.payload = delete_header(before, name)
        return self.payload != before

    @property
    def method(self):
        """The request method ("GET"), or None for a response."""
        return request_method(self.payload)

    @property
    def path(self):
        """The request target ("/a?b=c"), or None for a response."""
        return request_path(self.payload)

    @property
    def status(self):
        """The response status code (200), or None for a request."""
        return response_status(self.payload)

    @property
    def body(self):
        """The bytes after the HTTP head, as on the wire (not de-chunked)."""
        return get_body(self.payload)

    def set_body(self, body):
        """Replaces the body and sets Content-Length (dropping Transfer-Encoding)."""
        self.payload = set_body(self.payload, body)

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        return (self._header_line, self.payload) == (other._header_line, other.payload)

    def __repr__(self):
        return "Message(%r, %r)" % (self._header_line, self.payload[:64])


# --- line codec --------------------------------------------------------------------------


def decode_line(line):
    """Decodes one protocol line (with or without "\\n"; either hex case) into a Message."""
    line = bytes(line).rstrip(b"\n")
    line = line[:-1] if line.endswith(b"\r") else line
    if not line:
        raise ProtocolError("empty line")
    if len(line) % 2:
        raise ProtocolError("odd number of hex digits (%d)" % len(line))
    bad = _NOT_HEX.search(line)
    if bad:
        raise ProtocolError("byte %r at column %d is not a hex digit" % (bad.group().decode("latin-1"), bad.start() + 1))
    raw = binascii.unhexlify(line)
    newline = raw.find(b"\n")
    if newline < 0:
        raise ProtocolError("no header line (no newline in the decoded message)")
    return Message(raw[:newline], raw[newline + 1 :])


def encode_line(msg):
    """The protocol line for a message: lowercase hex of header + "\\n" + payload, then "\\n"."""
    return binascii.hexlify(msg.header_line + b"\n" + msg.payload) + b"\n"


def run(handler, stdin=None, stdout=None):
    """Calls handler(msg) for each line of stdin and writes what it returns (None drops).

    Each output line is flushed at once. Undecodable lines are reported on stderr and
    skipped; blank lines are ignored. Returns at end of input.
    """
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout.buffer
    try:
        for number, line in enumerate(stdin, 1):
            if not line.strip():
                continue
            try:
                msg = decode_line(line)
            except ProtocolError as err:
                sys.stderr.write("shadowtap-middleware: line %d skipped: %s\n" % (number, err))
                sys.stderr.flush()
                continue
            result = handler(msg)
            if result is not None:
                stdout.write(encode_line(result))
                stdout.flush()
    except BrokenPipeError:
        _silence_stdout(stdout)
    except KeyboardInterrupt:
        pass


def _silence_stdout(stdout):
    # Python flushes stdout again at exit; with the reader gone that would print a traceback.
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# --- HTTP/1.x payload helpers --------------------------------------------------------------
# The head is everything before the first "\r\n\r\n": the start line, then one header per
# line. A payload without that blank line (cut short) is all head and has no body.


def _split_head(payload):
    end = payload.find(_HEAD_END)
    if end < 0:
        return payload.split(_CRLF), None
    return payload[:end].split(_CRLF), payload[end + len(_HEAD_END) :]


def _join_head(lines, body):
    head = _CRLF.join(lines)
    return head if body is None else head + _HEAD_END + body


def _to_bytes(text):
    return text if isinstance(text, bytes) else str(text).encode("latin-1")


def _is_named(line, name):
    colon = line.find(b":")
    return colon >= 0 and line[:colon].lower() == name.lower()


def _check_header_text(name, value):
    if not name or any(c in name for c in b"\r\n:") or any(c in value for c in b"\r\n"):
        raise ValueError("header name/value must not contain CR or LF (or ':' in the name)")


def get_header(payload, name):
    """Value of the first header called `name` (any case), spaces trimmed, as str; or None."""
    name = _to_bytes(name)
    lines, _ = _split_head(payload)
    for line in lines[1:]:
        if _is_named(line, name):
            return line.split(b":", 1)[1].strip(b" \t").decode("latin-1")
    return None


def set_header(payload, name, value):
    """Payload with header `name` set to `value`.

    The first line whose name matches (any case) becomes "<its name>: <value>"; without one,
    "<name>: <value>\\r\\n" is inserted right after the start line. Nothing else changes.
    """
    name, value = _to_bytes(name), _to_bytes(value)
    _check_header_text(name, value)
    lines, body = _split_head(payload)
    for index, line in enumerate(lines[1:], 1):
        if _is_named(line, name):
            lines[index] = line[: line.find(b":")] + b": " + value
            return _join_head(lines, body)
    lines.insert(1, name + b": " + value)
    return _join_head(lines, body)


def delete_header(payload, name):
    """Payload without any header called `name` (any case)."""
    name = _to_bytes(name)
    lines, body = _split_head(payload)
    kept = lines[:1] + [line for line in lines[1:] if not _is_named(line, name)]
    return _join_head(kept, body)


def _start_line(payload):
    return payload.split(_CRLF, 1)[0]


def request_method(payload):
    """"GET" for "GET /x HTTP/1.1"; None for a response."""
    method = _start_line(payload).split(b" ")[0]
    return None if not method or method.startswith(b"HTTP/") else method.decode("latin-1")


def request_path(payload):
    """"/x?y" for "GET /x?y HTTP/1.1"; None for a response or a start line without target."""
    start = _start_line(payload)
    parts = start.split(b" ")
    if start.startswith(b"HTTP/") or len(parts) < 2:
        return None
    return parts[1].decode("latin-1")


def response_status(payload):
    """200 for "HTTP/1.1 200 OK"; None for a request."""
    parts = _start_line(payload).split(b" ")
    if not parts[0].startswith(b"HTTP/") or len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])


def get_body(payload):
    """The bytes after the head's blank line (b"" when there is none)."""
    _, body = _split_head(payload)
    return body or b""


def set_body(payload, body):
    """Payload with a new body and "Content-Length: <len>" set; Transfer-Encoding is removed."""
    body = bytes(body)
    lines, _ = _split_head(payload)
    while len(lines) > 1 and not lines[-1]:
        lines.pop()  # a head cut short may end in "\r\n"
    head = _join_head(lines, None)
    head = delete_header(head, b"Transfer-Encoding")
    head = set_header(head, b"Content-Length", str(len(body)))
    return head + _HEAD_END + body
