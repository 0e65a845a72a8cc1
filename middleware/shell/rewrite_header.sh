#!/usr/bin/env bash
# Sets header NAME to VALUE on every request (kind 1); passes everything else unchanged.
#   shadowtap --input-file in.gor \
#     --middleware "bash middleware/shell/rewrite_header.sh X-Shadow yes" --output-stdout
# Slow (bash reads stdin a byte at a time), but binary-safe: bodies are never decoded.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/shadowtap-middleware.sh"

if (($# != 2)); then
  echo "usage: rewrite_header.sh NAME VALUE" >&2
  exit 2
fi
name=$1 value=$2
if [[ -z $name || $name == *[:$'\r\n']* || $value == *[$'\r\n']* ]]; then
  echo "rewrite_header.sh: header name/value must not contain CR or LF (or ':' in the name)" >&2
  exit 2
fi

while IFS= read -r line || [[ -n $line ]]; do
  [[ $line == *$'\r' ]] && line=${line:0:-1} # not ${line%$'\r'}: that is quadratic in bash
  [[ -n $line ]] || continue
  if [[ $(stm_kind "$line") == 1 ]] && ! stm_head_has_nul "$line"; then
    stm_set_header "$line" "$name" "$value"
  else
    printf '%s\n' "$line"
  fi
done
