"""Unit tests for shadowtap_middleware (run: python3 -m unittest discover middleware/python)."""

import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shadowtap_middleware as mw  # noqa: E402

GET = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
POST = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n\x00\xff\r\n"


def line_of(raw):
    return raw.hex().encode() + b"\n"


class LineCodec(unittest.TestCase):
    def test_round_trip_is_byte_exact(self):
        line = line_of(b"1 abc 1 0\n" + POST)
        msg = mw.decode_line(line)
        self.assertEqual((msg.kind, msg.id, msg.timestamp, msg.latency), (1, "abc", 1, 0))
        self.assertEqual(msg.payload, POST)
        self.assertEqual(mw.encode_line(msg), line)

    def test_upper_case_and_crlf_lines(self):
        msg = mw.decode_line(line_of(b"2 id 5 6\nHTTP/1.1 200 OK\r\n\r\n").upper()[:-1] + b"\r\n")
        self.assertEqual(msg.status, 200)

    def test_three_fields_and_trailing_fields(self):
        self.assertIsNone(mw.decode_line(line_of(b"1 a 5\n")).latency)
        msg = mw.decode_line(line_of(b"3 a 5 6 extra x\nHTTP/1.1 204 No\r\n\r\n"))
        msg.id = "b"
        self.assertEqual(msg.header_line, b"3 b 5 6 extra x")

    def test_setting_latency_on_three_fields_appends_it(self):
        msg = mw.Message(b"1 a 5")
        msg.latency = 9
        self.assertEqual(msg.header_line, b"1 a 5 9")

    def test_bad_lines(self):
        for line in [b"", b"abc", b"zz", b"4142", line_of(b"x a 1\n"), line_of(b"1 a b\n"),
                     line_of(b"1 a\n"), line_of(b"1  1 2\n"), line_of(b"1 a 99999999999999999999\n")]:
            with self.assertRaises(mw.ProtocolError, msg=line):
                mw.decode_line(line)

    def test_build(self):
        msg = mw.Message.build(1, "abc", 10, 20, GET)
        self.assertEqual(msg.header_line, b"1 abc 10 20")
        self.assertEqual(mw.Message.build(2, b"abc", 10).header_line, b"2 abc 10")


class HttpHelpers(unittest.TestCase):
    def test_get_header_is_case_insensitive_and_trimmed(self):
        self.assertEqual(mw.get_header(b"GET / HTTP/1.1\r\nhOsT: \t y \r\n\r\n", "Host"), "y")
        self.assertIsNone(mw.get_header(GET, "Cookie"))
        self.assertIsNone(mw.get_header(b"GET / HTTP/1.1\r\n\r\nHost: body", "Host"))

    def test_set_header_replaces_first_match_keeping_its_name(self):
        payload = b"GET / HTTP/1.1\r\nx-a:1\r\nX-A: 2\r\n\r\nbody"
        self.assertEqual(mw.set_header(payload, "X-A", "new"),
                         b"GET / HTTP/1.1\r\nx-a: new\r\nX-A: 2\r\n\r\nbody")

    def test_set_header_inserts_after_start_line(self):
        self.assertEqual(mw.set_header(GET, "X-New", "v"),
                         b"GET /a?b=c HTTP/1.1\r\nX-New: v\r\nHost: x\r\nAccept: */*\r\n\r\n")
        self.assertEqual(mw.set_header(b"GET / HTTP/1.1\r\n\r\n", "A", "b"),
                         b"GET / HTTP/1.1\r\nA: b\r\n\r\n")

    def test_set_header_rejects_line_breaks(self):
        with self.assertRaises(ValueError):
            mw.set_header(GET, "X", "a\r\nEvil: 1")

    def test_delete_header_removes_all(self):
        payload = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\na: 3\r\n\r\n"
        self.assertEqual(mw.delete_header(payload, "A"), b"GET / HTTP/1.1\r\nB: 2\r\n\r\n")

    def test_start_line(self):
        self.assertEqual((mw.request_method(GET), mw.request_path(GET)), ("GET", "/a?b=c"))
        self.assertIsNone(mw.response_status(GET))
        self.assertEqual(mw.response_status(b"HTTP/1.0 404 Not Found\r\n\r\n"), 404)
        self.assertIsNone(mw.request_method(b"HTTP/1.0 404 Not Found\r\n\r\n"))

    def test_body(self):
        self.assertEqual(mw.get_body(POST), b"\x00\xff\r\n")
        self.assertEqual(mw.get_body(b"GET / HTTP/1.1\r\nHost: cut"), b"")
        chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
        self.assertEqual(mw.set_body(chunked, b"xyz"),
                         b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz")
        self.assertEqual(mw.set_body(POST, b""), POST.split(b"\r\n\r\n")[0].replace(b": 4", b": 0") + b"\r\n\r\n")

    def test_message_methods(self):
        msg = mw.Message(b"1 a 1 0", GET)
        msg.set_header("Host", "z")
        self.assertEqual(msg.get_header("host"), "z")
        self.assertTrue(msg.delete_header("Accept"))
        self.assertFalse(msg.delete_header("Accept"))
        msg.set_body(b"hi")
        self.assertEqual(msg.payload, b"GET /a?b=c HTTP/1.1\r\nContent-Length: 2\r\nHost: z\r\n\r\nhi")


class Run(unittest.TestCase):
    def test_emits_drops_and_skips(self):
        lines = [line_of(b"1 a 1 0\n" + GET), b"\n", b"zz\n", line_of(b"2 a 1 0\nHTTP/1.1 200 OK\r\n\r\n")]
        out = io.BytesIO()
        stderr, sys.stderr = sys.stderr, io.StringIO()
        try:
            mw.run(lambda m: m if m.kind == 1 else None, io.BytesIO(b"".join(lines)), out)
            warnings = sys.stderr.getvalue()
        finally:
            sys.stderr = stderr
        self.assertEqual(out.getvalue(), lines[0])
        self.assertIn("line 3", warnings)


if __name__ == "__main__":
    unittest.main()
