#!/usr/bin/env bash
# Passes every message on unchanged (bash's printf builtin writes each line at once).
#   shadowtap --input-file in.gor --middleware "bash middleware/shell/echo.sh" --output-stdout
while IFS= read -r line; do printf '%s\n' "$line"; done
