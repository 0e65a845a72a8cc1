#!/usr/bin/env python3
"""Sets header NAME to VALUE on every request (kind 1); passes everything else unchanged.

    shadowtap --input-file in.gor \\
        --middleware "python3 middleware/python/rewrite_header.py X-Shadow yes" --output-stdout
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shadowtap_middleware import REQUEST, run, set_header  # noqa: E402


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(2)


def main(argv):
    if len(argv) != 3:
        fail("usage: rewrite_header.py NAME VALUE")
    name, value = os.fsencode(argv[1]), os.fsencode(argv[2])  # the bytes as typed
    try:
        set_header(b"GET / HTTP/1.1", name, value)
    except ValueError as err:
        fail("rewrite_header.py: %s" % err)

    def rewrite(msg):
        if msg.kind == REQUEST:
            msg.set_header(name, value)
        return msg

    run(rewrite)


if __name__ == "__main__":
    main(sys.argv)
