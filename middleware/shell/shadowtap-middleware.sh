#!/usr/bin/env bash
# Helpers for shadowtap (and GoReplay) middlewares in bash + coreutils (no xxd, sed or awk).
# Source it:   . "$(dirname "$0")/shadowtap-middleware.sh"
#
# Each protocol line is the hex of "<header line>\n<payload>". Bytes are decoded only where
# text is needed (the HTTP head); bodies stay hex, so NUL bytes survive untouched.
# Byte semantics for ${#var}, ${var:offset} and ${var,,}:
export LC_ALL=C

# stm_decode HEX: writes the bytes HEX stands for to stdout.
stm_decode() {
  [[ -n $1 ]] || return 0
  # printf repeats its format per argument: "4745" -> "\x47\x45", which %b turns into bytes.
  # shellcheck disable=SC2046  # splitting into pairs is the point
  printf '%b' "$(printf '\\x%s' $(printf '%s' "$1" | fold -w2))"
}

# stm_encode: reads bytes on stdin, writes their lowercase hex (no newline) to stdout.
stm_encode() {
  od -An -tx1 -v | tr -d ' \n'
}

# stm_kind LINE: prints the kind digit of a protocol line (1 request, 2 response, 3 replayed).
stm_kind() {
  stm_decode "${1:0:2}"
}

# stm_find HEX NEEDLE: prints the offset (in hex digits) of the first byte-aligned NEEDLE in HEX,
# or prints nothing. Spacing the pairs out keeps a match from straddling two bytes.
stm_find() {
  local spaced needle prefix size=3072
  spaced=" $(printf '%s' "$1" | fold -w2 | tr '\n' ' ')"
  needle=" $(printf '%s' "$2" | fold -w2 | tr '\n' ' ')"
  needle=${needle% }
  [[ $spaced == *"$needle"* ]] || return 0
  # ${var%%pattern*} costs O(length of var) per position it tries: cut in short prefixes.
  while prefix=${spaced:0:size} && [[ $prefix != *"$needle"* ]]; do
    size=$((size * 4))
  done
  prefix=${prefix%%"$needle"*}
  printf '%d\n' $((${#prefix} * 2 / 3))
}

# stm_split LINE: sets STM_HEAD_HEX (header line + HTTP head, without the blank line),
# STM_BODY_HEX and STM_HAS_BLANK (1 when the head ends in "\r\n\r\n", 0 when it was cut short).
stm_split() {
  local line=${1,,} end
  end=$(stm_find "$line" 0d0a0d0a)
  if [[ -n $end ]]; then
    STM_HEAD_HEX=${line:0:end} STM_BODY_HEX=${line:end+8} STM_HAS_BLANK=1
  else
    STM_HEAD_HEX=$line STM_BODY_HEX="" STM_HAS_BLANK=0
  fi
}

# stm_join: prints the protocol line for STM_HEAD_HEX, STM_BODY_HEX and STM_HAS_BLANK.
stm_join() {
  local blank=""
  ((STM_HAS_BLANK)) && blank=0d0a0d0a
  printf '%s%s%s\n' "$STM_HEAD_HEX" "$blank" "$STM_BODY_HEX"
}

# stm_head_text HEX: sets STM_TEXT to the bytes of HEX (keeping trailing newlines).
stm_head_text() {
  STM_TEXT=$(stm_decode "$1" && printf x)
  STM_TEXT=${STM_TEXT%x}
}

# stm_lines TEXT: splits TEXT on "\r\n" into the array STM_LINES. Line 0 is
# "<header line>\n<start line>"; the others are HTTP headers.
stm_lines() {
  local rest=$1
  STM_LINES=()
  while [[ $rest == *$'\r\n'* ]]; do
    STM_LINES+=("${rest%%$'\r\n'*}")
    rest=${rest#*$'\r\n'}
  done
  STM_LINES+=("$rest")
}

# stm_header_index NAME: prints the index in STM_LINES of the first header called NAME (any case).
stm_header_index() {
  local i line wanted=${1,,}
  for ((i = 1; i < ${#STM_LINES[@]}; i++)); do
    line=${STM_LINES[i]}
    [[ $line == *:* ]] || continue
    line=${line%%:*}
    if [[ ${line,,} == "$wanted" ]]; then
      printf '%d\n' "$i"
      return 0
    fi
  done
  return 1
}

# stm_get_header LINE NAME: prints the value of the first header NAME (spaces trimmed); fails if absent.
stm_get_header() {
  local index value
  stm_split "$1"
  stm_head_text "$STM_HEAD_HEX"
  stm_lines "$STM_TEXT"
  index=$(stm_header_index "$2") || return 1
  value=${STM_LINES[index]#*:}
  value=${value#"${value%%[! $'\t']*}"}
  printf '%s\n' "${value%"${value##*[! $'\t']}"}"
}

# stm_set_header LINE NAME VALUE: prints LINE with header NAME set to VALUE. The first header
# called NAME (any case) becomes "<its name>: VALUE"; without one, "NAME: VALUE\r\n" is
# inserted right after the start line.
stm_set_header() {
  local index name=$2 value=$3
  stm_split "$1"
  stm_head_text "$STM_HEAD_HEX"
  stm_lines "$STM_TEXT"
  if index=$(stm_header_index "$name"); then
    STM_LINES[index]="${STM_LINES[index]%%:*}: $value"
  else
    STM_LINES=("${STM_LINES[0]}" "$name: $value" "${STM_LINES[@]:1}")
  fi
  STM_HEAD_HEX=$(stm_join_lines | stm_encode)
  stm_join
}

# stm_join_lines: prints STM_LINES joined with "\r\n".
stm_join_lines() {
  local i
  printf '%s' "${STM_LINES[0]}"
  for ((i = 1; i < ${#STM_LINES[@]}; i++)); do
    printf '\r\n%s' "${STM_LINES[i]}"
  done
}

# stm_head_has_nul LINE: true when the head of LINE holds a NUL byte (bash strings cannot).
stm_head_has_nul() {
  stm_split "$1"
  [[ -n $(stm_find "$STM_HEAD_HEX" 00) ]]
}
