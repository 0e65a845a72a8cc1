#!/usr/bin/env python3
"""Pipes real protocol lines through every example middleware and checks the bytes that come out.

    python3 middleware/check_examples.py [--rust-examples DIR] [--skip-large-shell]

DIR holds the built Rust examples (echo, rewrite_header), e.g. target/release/examples;
without it the Rust examples are skipped, and so is Node when `node` is missing.
Checks per example: byte-exact output, one line out per line in before stdin closes
(each line is flushed), and exit at end of input.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NAME, VALUE = "X-Shadow", "yes \u20ac"  # a UTF-8 value: the bytes typed must be the bytes sent
NAME_B, VALUE_B = NAME.encode(), VALUE.encode()
BIG = 2 * 1024 * 1024


def request(header_line, payload):
    return header_line + b"\n" + payload


MESSAGES = [
    request(b"1 0123456789abcdef01234567 1700000000000000000 0",
            b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"),
    request(b"1 0123456789abcdef01234568 1700000000000000001 0",
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\n"
            b"\x00\xff\x7f\r\n\r\nX-Shadow: body\r\n\n\x80\x0a\x00zz"),
    request(b"1 0123456789abcdef0123456789abcdef01234567 1700000000000000002",
            b"GET / HTTP/1.0\r\nx-shadow: old\r\nX-Shadow: second\r\n\r\n"),
    request(b"2 0123456789abcdef01234567 1700000000000000003 1234",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\x00\x01\x02\x03"),
    request(b"3 0123456789abcdef01234567 1700000000000000004 99 extra fields",
            b"HTTP/1.1 404 Not Found\r\n\r\n"),
    request(b"1 cut 1700000000000000005 0", b"GET /cut HTTP/1.1\r\nHost: cut-sho"),
    # 0xa0 0xd0 ... makes "0d0a0d0a" appear in the hex at an odd offset, inside the head.
    request(b"1 odd 1700000000000000006 0",
            b"GET / HTTP/1.1\r\nX-Bin: \xa0\xd0\xa0\xd0\xa0\r\n\r\nbody"),
]
LARGE = request(b"1 0123456789abcdef01234569 1700000000000000007 0",
                b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG
                + bytes(range(256)) * (BIG // 256))


def line_of(raw):
    return raw.hex().encode() + b"\n"


def expected_rewrite(raw):
    """The documented rule, implemented independently of the libraries."""
    header_line, payload = raw.split(b"\n", 1)
    if not header_line.startswith(b"1 "):
        return raw
    end = payload.find(b"\r\n\r\n")
    head, rest = (payload, b"") if end < 0 else (payload[:end], payload[end:])
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines[1:], 1):
        if b":" in line and line.split(b":", 1)[0].lower() == NAME_B.lower():
            lines[i] = line.split(b":", 1)[0] + b": " + VALUE_B
            break
    else:
        lines.insert(1, NAME_B + b": " + VALUE_B)
    return header_line + b"\n" + b"\r\n".join(lines) + rest


def run_checked(argv, lines):
    """Feeds all lines, then checks the output and that the process exited by itself."""
    proc = subprocess.run(argv, input=b"".join(lines), capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError("exit %d, stderr: %s" % (proc.returncode, proc.stderr.decode(errors="replace")))
    return proc.stdout.splitlines(keepends=True)


def check_flushes(argv):
    """One line in must give one line out while stdin is still open."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        proc.stdin.write(line_of(MESSAGES[0]))
        proc.stdin.flush()
        out = proc.stdout.readline()  # blocks forever if the example does not flush
        if not out.endswith(b"\n"):
            raise AssertionError("no line before stdin closed")
        proc.stdin.close()
        if proc.wait(timeout=30) != 0:
            raise AssertionError("did not exit 0 at end of input")
    finally:
        proc.kill()


def decoded(lines):
    return [bytes.fromhex(line.strip().decode()) for line in lines]


def check(label, argv, transform, large):
    messages = MESSAGES + ([LARGE] if large else [])
    started = time.monotonic()
    inputs = [line_of(m) for m in messages]
    inputs.insert(3, line_of(MESSAGES[3]).upper())  # upper-case hex must be accepted
    expected = [transform(m) for m in messages]
    expected.insert(3, transform(MESSAGES[3]))
    got = run_checked(argv, inputs)
    if decoded(got) != expected:
        for n, (g, e) in enumerate(zip(decoded(got), expected)):
            if g != e:
                raise AssertionError("message %d:\n got  %r\n want %r" % (n, g[:300], e[:300]))
        raise AssertionError("got %d messages, want %d" % (len(got), len(expected)))
    if transform is identity:
        lower = [line for i, line in enumerate(inputs) if i != 3]
        if [line for i, line in enumerate(got) if i != 3] != lower:
            raise AssertionError("echo did not return lowercase lines byte for byte")
    check_flushes(argv)
    print("ok   %-34s %5.2fs" % (label, time.monotonic() - started))


def identity(raw):
    return raw


def examples(rust_dir):
    py, node, sh = os.path.join(HERE, "python"), os.path.join(HERE, "node"), os.path.join(HERE, "shell")
    yield "python echo.py", [sys.executable, os.path.join(py, "echo.py")], identity, True
    yield "python rewrite_header.py", [sys.executable, os.path.join(py, "rewrite_header.py"), NAME, VALUE], expected_rewrite, True
    if shutil.which("node"):
        yield "node echo.js", ["node", os.path.join(node, "echo.js")], identity, True
        yield "node rewrite-header.js", ["node", os.path.join(node, "rewrite-header.js"), NAME, VALUE], expected_rewrite, True
    yield "shell echo.sh", ["bash", os.path.join(sh, "echo.sh")], identity, "shell"
    yield "shell rewrite_header.sh", ["bash", os.path.join(sh, "rewrite_header.sh"), NAME, VALUE], expected_rewrite, "shell"
    if rust_dir:
        yield "rust echo", [os.path.join(rust_dir, "echo")], identity, True
        yield "rust rewrite_header", [os.path.join(rust_dir, "rewrite_header"), NAME, VALUE], expected_rewrite, True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rust-examples", metavar="DIR")
    parser.add_argument("--skip-large-shell", action="store_true", help="no 2 MiB message for the (slow) shell examples")
    args = parser.parse_args()
    failed = passed = 0
    for label, argv, transform, large in examples(args.rust_examples):
        if large == "shell":
            large = not args.skip_large_shell
        try:
            check(label, argv, transform, large)
            passed += 1
        except (AssertionError, subprocess.TimeoutExpired, OSError) as err:
            failed += 1
            print("FAIL %s: %s" % (label, err))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
