#!/usr/bin/env python3
"""Passes every message on unchanged.

    shadowtap --input-file in.gor --middleware "python3 middleware/python/echo.py" --output-stdout
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shadowtap_middleware import run  # noqa: E402

if __name__ == "__main__":
    run(lambda msg: msg)
