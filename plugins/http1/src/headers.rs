//! Header fields of a raw HTTP/1.x message: lookup and in-place, byte-exact edits
//! (RFC 9112 §5), and the parts of its start line (§3, §4).
//!
//! The message is taken as it was captured: leading empty lines are skipped, lines end in LF
//! or CRLF (a CR anywhere else is an ordinary byte), a line starting with SP or HTAB
//! continues the field above it (obs-fold), a line without a colon is kept but is not a field,
//! and a message cut short before its blank line is all head. An edit changes only the bytes
//! of the field it edits (or inserts one line); every other byte stays identical. Nothing is
//! allocated by a length the message states; work is linear in the bytes looked at.

use std::borrow::Cow;
use std::ops::Range;

use memchr::memchr;

/// One field line (with its obs-fold continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// The name as on the wire (trailing spaces before the colon left out).
    pub name: &'a [u8],
    /// The value without leading and trailing whitespace; an obs-fold stays inside it.
    pub value: &'a [u8],
    /// Where the field is: from its first byte through the line end of its last line.
    pub line: Range<usize>,
    /// Where `value` is.
    pub value_at: Range<usize>,
}

impl Field<'_> {
    /// The value with each obs-fold (line end and the whitespace around it) replaced by one SP.
    pub fn value_unfolded(&self) -> Cow<'_, [u8]> {
        if memchr(b'\n', self.value).is_none() {
            return Cow::Borrowed(self.value);
        }
        let mut out = Vec::with_capacity(self.value.len());
        for (k, piece) in self.value.split(|&b| b == b'\n').enumerate() {
            let piece = if k == 0 { piece } else { trim_ows_start(piece) };
            let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
            if k > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(trim_ows_end(piece));
        }
        Cow::Owned(out)
    }

    /// True if the name is `name`, ASCII case-insensitively.
    pub fn is(&self, name: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Where the parts of a message's head are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The start line without its line end (empty lines before it skipped).
    pub start_line: Range<usize>,
    /// Just past the start line's line end: where the field lines begin.
    pub fields_start: usize,
    /// Just past the last field line: where the blank line begins (or the message's end).
    pub fields_end: usize,
    /// Just past the blank line ending the head; the message's length when it has none.
    pub head_end: usize,
    /// The head ends with a blank line.
    pub complete: bool,
    /// The start line ends in CRLF or has no line end (else it ends in a bare LF).
    pub crlf: bool,
}

impl Layout {
    /// The line end an inserted line gets: the start line's.
    pub fn newline(&self) -> &'static [u8] {
        if self.crlf {
            b"\r\n"
        } else {
            b"\n"
        }
    }
}

/// The line at `at`: (content end, next line's start); `None` at the end of `msg`.
fn line_at(msg: &[u8], at: usize) -> Option<(usize, usize)> {
    if at >= msg.len() {
        return None;
    }
    Some(match memchr(b'\n', &msg[at..]) {
        Some(i) => {
            let lf = at + i;
            let content_end = if lf > at && msg[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            (content_end, lf + 1)
        }
        None => (msg.len(), msg.len()),
    })
}

/// Where the start line, the field lines and the blank line of `msg` are.
pub fn layout(msg: &[u8]) -> Layout {
    let mut at = 0;
    while let Some(rest) = msg.get(at..) {
        match rest {
            [b'\n', ..] => at += 1,
            [b'\r', b'\n', ..] => at += 2,
            _ => break,
        }
    }
    let (content_end, fields_start) = line_at(msg, at).unwrap_or((msg.len(), msg.len()));
    // CRLF unless the start line ends in a bare LF.
    let crlf = msg.get(content_end..fields_start) != Some(b"\n");
    let mut layout = Layout {
        start_line: at..content_end,
        fields_start,
        fields_end: msg.len(),
        head_end: msg.len(),
        complete: false,
        crlf,
    };
    if fields_start == content_end {
        // No line end after the start line: no fields.
        return layout;
    }
    let mut line = fields_start;
    while let Some((end, next)) = line_at(msg, line) {
        if end == line && next > line {
            layout.fields_end = line;
            layout.head_end = next;
            layout.complete = true;
            return layout;
        }
        line = next;
    }
    layout
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    s
}

fn trim_ows_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// The field lines of a message, in order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    msg: &'a [u8],
    at: usize,
    end: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let msg = self.msg;
        while self.at < self.end {
            let start = self.at;
            let (first_end, mut next) = line_at(msg, start)?;
            next = next.min(self.end);
            let first_end = first_end.min(next);
            let mut content_end = first_end;
            // The continuation lines of this one.
            while next < self.end && is_ows(msg[next]) {
                let (end, after) = line_at(msg, next)?;
                content_end = end.min(self.end);
                next = after.min(self.end);
            }
            self.at = next;
            // The name and its colon are on the first line.
            let first_line = &msg[start..first_end];
            let Some(colon) = memchr(b':', first_line) else {
                continue;
            };
            let name = trim_ows_end(&first_line[..colon]);
            if name.is_empty() || is_ows(first_line[0]) {
                continue;
            }
            let mut from = start + colon + 1;
            let mut to = content_end;
            while from < to && is_ows(msg[from]) {
                from += 1;
            }
            while to > from && matches!(msg[to - 1], b' ' | b'\t' | b'\r' | b'\n') {
                to -= 1;
            }
            return Some(Field {
                name,
                value: &msg[from..to],
                line: start..next,
                value_at: from..to,
            });
        }
        None
    }
}

/// The field lines of `msg`'s head.
pub fn fields(msg: &[u8]) -> Fields<'_> {
    let layout = layout(msg);
    Fields {
        msg,
        at: layout.fields_start,
        end: layout.fields_end,
    }
}

/// The first field called `name` (ASCII case-insensitively).
pub fn find<'a>(msg: &'a [u8], name: &[u8]) -> Option<Field<'a>> {
    fields(msg).find(|f| f.is(name))
}

/// Every field called `name` (ASCII case-insensitively), in order.
pub fn find_all<'a, 'n>(msg: &'a [u8], name: &'n [u8]) -> impl Iterator<Item = Field<'a>> + 'n
where
    'a: 'n,
{
    fields(msg).filter(move |f| f.is(name))
}

/// The value of the first field called `name`.
pub fn value<'a>(msg: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    find(msg, name).map(|f| f.value)
}

/// The comma-separated elements of a list value (RFC 9110 §5.6.1), trimmed, empty ones skipped.
pub fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|e| trim_ows_end(trim_ows_start(e)))
        .filter(|e| !e.is_empty())
}

/// True if some field `name` lists `token` (ASCII case-insensitively).
pub fn has_token(msg: &[u8], name: &[u8], token: &[u8]) -> bool {
    find_all(msg, name).any(|f| list(f.value).any(|t| t.eq_ignore_ascii_case(token)))
}

/// The final transfer coding is `chunked` (RFC 9112 §6.3: the last `Transfer-Encoding` field's
/// last element).
pub fn is_chunked(msg: &[u8]) -> bool {
    find_all(msg, b"transfer-encoding").last().is_some_and(|f| {
        list(f.value)
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
    })
}

/// Why an edit was refused (the message is left unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The name is empty or holds a byte that is not a token character.
    #[error("invalid header name: empty, or a byte at {0} that is not a token character")]
    Name(usize),
    /// The value holds CR, LF or NUL (it would end or break the line).
    #[error("invalid header value: CR, LF or NUL at byte {0}")]
    Value(usize),
}

/// Where a new field line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Right after the start line (GoReplay's choice for a header it sets), past any
    /// continuation line that has no field to continue.
    First,
    /// After the last field line, before the blank line.
    Last,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `name: value` can be written as a field line: the name a non-empty token, the
/// value free of CR, LF and NUL.
pub fn check_field(name: &[u8], value: &[u8]) -> Result<(), EditError> {
    if name.is_empty() {
        return Err(EditError::Name(0));
    }
    if let Some(at) = name.iter().position(|&b| !is_tchar(b)) {
        return Err(EditError::Name(at));
    }
    if let Some(at) = value.iter().position(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(EditError::Value(at));
    }
    Ok(())
}

/// Replaces the value of the first field called `name`; without one, inserts `name: value`
/// at `place`. Only that field's value (or the inserted line) changes; its name, the
/// whitespace around the value and the line end stay (a single SP is put after the colon when
/// there was none). An obs-folded value is replaced whole.
pub fn set(msg: &mut Vec<u8>, name: &[u8], value: &[u8], place: Place) -> Result<(), EditError> {
    check_field(name, value)?;
    match find(msg, name) {
        Some(field) => {
            replace_value(msg, &field.value_at.clone(), value);
            Ok(())
        }
        None => add(msg, name, value, place),
    }
}

/// Replaces the bytes at `value_at` (a [`Field::value_at`] of `msg`) with `value`, putting a SP
/// before it if the colon is right before.
fn replace_value(msg: &mut Vec<u8>, value_at: &Range<usize>, value: &[u8]) {
    let needs_space = value_at.start > 0 && msg[value_at.start - 1] == b':' && !value.is_empty();
    if needs_space {
        let mut spaced = Vec::with_capacity(value.len() + 1);
        spaced.push(b' ');
        spaced.extend_from_slice(value);
        msg.splice(value_at.clone(), spaced);
    } else {
        msg.splice(value_at.clone(), value.iter().copied());
    }
}

/// Inserts the field line `name: value` at `place` (even if one with that name exists).
pub fn add(msg: &mut Vec<u8>, name: &[u8], value: &[u8], place: Place) -> Result<(), EditError> {
    check_field(name, value)?;
    let layout = layout(msg);
    let newline = layout.newline();
    let mut line = Vec::with_capacity(name.len() + value.len() + 4);
    let mut at = match place {
        // Past any orphan continuation lines, which would otherwise fold into the new field.
        Place::First => {
            let mut at = layout.fields_start;
            while at < layout.fields_end && is_ows(msg[at]) {
                at = line_at(msg, at).map_or(layout.fields_end, |(_, next)| next);
            }
            at
        }
        Place::Last => layout.fields_end,
    };
    // A start line (or, at the end of a head cut short, a last line) without its line end
    // gets one first; the inserted line then ends the message, as the cut line did.
    let mut unterminated = at == msg.len() && !msg.is_empty() && msg[at - 1] != b'\n';
    if unterminated && msg[at - 1] == b'\r' && (at == 1 || msg[at - 2] == b'\n') {
        // A cut line that is a lone CR would become a blank line ending the head before the
        // new field: the field goes before it.
        at -= 1;
        unterminated = false;
    }
    if unterminated {
        // A cut line ending in CR only lacks the LF of its CRLF.
        line.extend_from_slice(if msg[at - 1] == b'\r' { b"\n" } else { newline });
    }
    line.extend_from_slice(name);
    line.extend_from_slice(b": ");
    line.extend_from_slice(value);
    if !unterminated {
        line.extend_from_slice(newline);
    }
    msg.splice(at..at, line);
    Ok(())
}

/// Removes every field called `name` (with its continuation lines); returns how many.
pub fn remove(msg: &mut Vec<u8>, name: &[u8]) -> usize {
    let lines: Vec<Range<usize>> = find_all(msg, name).map(|f| f.line).collect();
    remove_lines(msg, &lines);
    lines.len()
}

/// Removes the given byte ranges (in order, not overlapping) from `msg`, in one pass.
fn remove_lines(msg: &mut Vec<u8>, lines: &[Range<usize>]) {
    if lines.is_empty() {
        return;
    }
    let mut write = lines[0].start;
    for (k, line) in lines.iter().enumerate() {
        let keep_to = lines.get(k + 1).map_or(msg.len(), |l| l.start);
        msg.copy_within(line.end..keep_to, write);
        write += keep_to - line.end;
    }
    msg.truncate(write);
}

/// The parts of a request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// The method (a token).
    pub method: &'a [u8],
    /// The request-target.
    pub target: &'a [u8],
    /// `HTTP/x.y`; empty for an HTTP/0.9 request line (`GET /`).
    pub version: &'a [u8],
    /// Where the method is.
    pub method_at: Range<usize>,
    /// Where the target is.
    pub target_at: Range<usize>,
}

/// The parts of a status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine<'a> {
    /// `HTTP/x.y` (any case).
    pub version: &'a [u8],
    /// The three-digit status code.
    pub status: u16,
    /// The reason phrase, possibly empty.
    pub reason: &'a [u8],
}

/// Splits a line at runs of SP/HTAB: (word start, word end) pairs, at most `N`, plus whether
/// more words followed.
fn words<const N: usize>(line: &[u8]) -> ([Range<usize>; N], usize, bool) {
    let mut out: [Range<usize>; N] = std::array::from_fn(|_| 0..0);
    let mut count = 0;
    let mut at = 0;
    loop {
        while at < line.len() && is_ows(line[at]) {
            at += 1;
        }
        if at == line.len() {
            return (out, count, false);
        }
        if count == N {
            return (out, count, true);
        }
        let start = at;
        while at < line.len() && !is_ows(line[at]) {
            at += 1;
        }
        out[count] = start..at;
        count += 1;
    }
}

fn is_http_version(word: &[u8]) -> bool {
    word.len() > 5 && word[..5].eq_ignore_ascii_case(b"HTTP/")
}

/// The method, target and version of `msg`'s request line, tolerantly: words separated by
/// runs of SP/HTAB, the version optional (HTTP/0.9) and of any case. `None` when the first
/// line is not `token target [HTTP/x]`.
pub fn request_line(msg: &[u8]) -> Option<RequestLine<'_>> {
    let at = layout(msg).start_line;
    let line = &msg[at.clone()];
    let ([method, target, version], count, more) = words::<3>(line);
    let method_bytes = &line[method.clone()];
    if count < 2 || more || !method_bytes.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let version = if count == 3 {
        let word = &line[version];
        if !is_http_version(word) {
            return None;
        }
        word
    } else {
        &[]
    };
    let shift = |r: Range<usize>| at.start + r.start..at.start + r.end;
    Some(RequestLine {
        method: method_bytes,
        target: &line[target.clone()],
        version,
        method_at: shift(method),
        target_at: shift(target),
    })
}

/// The version, status code and reason of `msg`'s status line, tolerantly (`http/1.1`,
/// `HTTP/1.10`, runs of spaces). `None` when the first line is not `HTTP/x 3DIGIT [reason]`.
pub fn status_line(msg: &[u8]) -> Option<StatusLine<'_>> {
    let line = &msg[layout(msg).start_line];
    let ([version, code], count, _) = words::<2>(line);
    let version = &line[version];
    let code_bytes = &line[code.clone()];
    if count < 2 || !is_http_version(version) {
        return None;
    }
    if code_bytes.len() != 3 || !code_bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code_bytes
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    Some(StatusLine {
        version,
        status,
        reason: trim_ows_end(trim_ows_start(&line[code.end..])),
    })
}

/// Replaces the request-target of `msg`'s request line; false (nothing changed) when it has
/// none.
pub fn set_target(msg: &mut Vec<u8>, target: &[u8]) -> bool {
    let Some(at) = request_line(msg).map(|l| l.target_at) else {
        return false;
    };
    msg.splice(at, target.iter().copied());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &[u8] = b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nBody: no";

    fn names(msg: &[u8]) -> Vec<String> {
        fields(msg)
            .map(|f| String::from_utf8_lossy(f.name).into_owned())
            .collect()
    }

    #[test]
    fn iterates_fields_with_ranges() {
        let all: Vec<Field<'_>> = fields(GET).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, b"Host");
        assert_eq!(all[0].value, b"x");
        assert_eq!(&GET[all[0].line.clone()], b"Host: x\r\n");
        assert_eq!(&GET[all[1].value_at.clone()], b"*/*");
        let layout = layout(GET);
        assert!(layout.complete);
        assert_eq!(&GET[layout.head_end..], b"Body: no");
        assert_eq!(&GET[layout.start_line], b"GET /a?b=c HTTP/1.1");
    }

    #[test]
    fn lookup_is_case_insensitive_trimmed_and_stops_at_the_body() {
        let msg = b"GET / HTTP/1.1\r\nhOsT : \t y \r\nX: 1\r\nx: 2\r\n\r\nHost: body";
        assert_eq!(value(msg, b"Host"), Some(&b"y"[..]));
        let all: Vec<&[u8]> = find_all(msg, b"X").map(|f| f.value).collect();
        assert_eq!(all, [&b"1"[..], b"2"]);
        assert_eq!(value(b"GET / HTTP/1.1\r\n\r\nHost: body", b"Host"), None);
        assert_eq!(value(msg, b"Missing"), None);
    }

    #[test]
    fn bare_lf_and_mixed_line_ends() {
        let msg = b"HTTP/1.1 200 OK\nA: 1\r\nB: 2\n\r\nbody";
        assert_eq!(names(msg), ["A", "B"]);
        let l = layout(msg);
        assert!(l.complete && !l.crlf);
        assert_eq!(&msg[l.head_end..], b"body");
        let msg = b"GET / HTTP/1.0\n\n";
        assert_eq!(layout(msg).head_end, msg.len());
        // A bare CR is a byte of the value, not a line end.
        let msg = b"GET / HTTP/1.1\r\nA: x\ry\r\n\r\n";
        assert_eq!(value(msg, b"A"), Some(&b"x\ry"[..]));
    }

    #[test]
    fn obs_fold_continues_the_value() {
        let msg = b"GET / HTTP/1.1\r\nX: a\r\n  b\r\n\tc \r\nY: 2\r\n\r\n";
        let x = find(msg, b"x").unwrap();
        assert_eq!(x.value, b"a\r\n  b\r\n\tc");
        assert_eq!(&*x.value_unfolded(), b"a b c");
        assert_eq!(&msg[x.line.clone()], b"X: a\r\n  b\r\n\tc \r\n");
        assert_eq!(names(msg), ["X", "Y"]);
        let mut edited = msg.to_vec();
        set(&mut edited, b"X", b"new", Place::First).unwrap();
        assert_eq!(edited, b"GET / HTTP/1.1\r\nX: new \r\nY: 2\r\n\r\n");
        let mut edited = msg.to_vec();
        assert_eq!(remove(&mut edited, b"x"), 1);
        assert_eq!(edited, b"GET / HTTP/1.1\r\nY: 2\r\n\r\n");
    }

    #[test]
    fn lines_without_colon_and_leading_empty_lines() {
        let msg = b"\r\n\nGET / HTTP/1.1\r\nnot a field\r\n: empty name\r\nA: 1\r\n\r\n";
        assert_eq!(names(msg), ["A"]);
        // A colon on a continuation line does not make the line above a field.
        assert_eq!(
            names(b"GET / HTTP/1.1\r\njunk\r\n x: y\r\nB: 2\r\n\r\n"),
            ["B"]
        );
        assert_eq!(request_line(msg).unwrap().method, b"GET");
        let mut edited = msg.to_vec();
        set(&mut edited, b"B", b"2", Place::First).unwrap();
        assert_eq!(
            edited,
            b"\r\n\nGET / HTTP/1.1\r\nB: 2\r\nnot a field\r\n: empty name\r\nA: 1\r\n\r\n"
        );
    }

    #[test]
    fn set_replaces_first_or_inserts() {
        let mut msg = b"GET / HTTP/1.1\r\nx-a:1\r\nX-A:  2 \r\n\r\nbody".to_vec();
        set(&mut msg, b"X-A", b"new", Place::First).unwrap();
        assert_eq!(msg, b"GET / HTTP/1.1\r\nx-a: new\r\nX-A:  2 \r\n\r\nbody");
        set(&mut msg, b"Z", b"v", Place::First).unwrap();
        assert_eq!(
            msg,
            b"GET / HTTP/1.1\r\nZ: v\r\nx-a: new\r\nX-A:  2 \r\n\r\nbody"
        );
        set(&mut msg, b"Last", b"w", Place::Last).unwrap();
        assert_eq!(
            msg,
            b"GET / HTTP/1.1\r\nZ: v\r\nx-a: new\r\nX-A:  2 \r\nLast: w\r\n\r\nbody"
        );
        let mut lf = b"GET / HTTP/1.0\n\n".to_vec();
        add(&mut lf, b"Host", b"t", Place::Last).unwrap();
        assert_eq!(lf, b"GET / HTTP/1.0\nHost: t\n\n");
    }

    #[test]
    fn edits_on_heads_cut_short() {
        let mut msg = b"GET / HTTP/1.1\r\nHost: cut".to_vec();
        set(&mut msg, b"A", b"b", Place::First).unwrap();
        assert_eq!(msg, b"GET / HTTP/1.1\r\nA: b\r\nHost: cut");
        add(&mut msg, b"C", b"d", Place::Last).unwrap();
        assert_eq!(msg, b"GET / HTTP/1.1\r\nA: b\r\nHost: cut\r\nC: d");
        let mut msg = b"GET / HTTP/1.1".to_vec();
        set(&mut msg, b"A", b"b", Place::First).unwrap();
        assert_eq!(msg, b"GET / HTTP/1.1\r\nA: b");
        let mut empty = Vec::new();
        add(&mut empty, b"A", b"b", Place::Last).unwrap();
        assert_eq!(empty, b"A: b\r\n");
        // An orphan continuation line does not fold into an inserted field.
        let mut orphan = b"GET / HTTP/1.1\r\n  x\r\nB: 1\r\n\r\n".to_vec();
        set(&mut orphan, b"A", b"v", Place::First).unwrap();
        assert_eq!(orphan, b"GET / HTTP/1.1\r\n  x\r\nA: v\r\nB: 1\r\n\r\n");
        assert_eq!(value(&orphan, b"a"), Some(&b"v"[..]));
        // A cut head ending in a lone CR: the CR stays last, after the new field.
        let mut cr = b"GET / HTTP/1.1\nHost\r\n\r".to_vec();
        add(&mut cr, b"A", b"v", Place::Last).unwrap();
        assert_eq!(cr, b"GET / HTTP/1.1\nHost\r\nA: v\n\r");
        assert_eq!(value(&cr, b"a"), Some(&b"v"[..]));
        let mut cr = b"GET / HTTP/1.1\r\nHost: x\r".to_vec();
        add(&mut cr, b"A", b"v", Place::Last).unwrap();
        assert_eq!(cr, b"GET / HTTP/1.1\r\nHost: x\r\nA: v");
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        let mut msg = GET.to_vec();
        assert_eq!(
            set(&mut msg, b"X", b"a\r\nEvil: 1", Place::First),
            Err(EditError::Value(1))
        );
        assert_eq!(
            add(&mut msg, b"", b"a", Place::First),
            Err(EditError::Name(0))
        );
        assert_eq!(
            add(&mut msg, b"A:B", b"a", Place::First),
            Err(EditError::Name(1))
        );
        assert_eq!(
            add(&mut msg, b"A", b"\0", Place::First),
            Err(EditError::Value(0))
        );
        assert_eq!(msg, GET);
    }

    #[test]
    fn remove_takes_every_match_and_nothing_else() {
        let mut msg = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\na: 3\r\n\r\nA: body".to_vec();
        assert_eq!(remove(&mut msg, b"A"), 2);
        assert_eq!(msg, b"GET / HTTP/1.1\r\nB: 2\r\n\r\nA: body");
        assert_eq!(remove(&mut msg, b"A"), 0);
        assert_eq!(msg, b"GET / HTTP/1.1\r\nB: 2\r\n\r\nA: body");
    }

    #[test]
    fn start_lines() {
        let l = request_line(GET).unwrap();
        assert_eq!(
            (l.method, l.target, l.version),
            (&b"GET"[..], &b"/a?b=c"[..], &b"HTTP/1.1"[..])
        );
        assert_eq!(&GET[l.target_at], b"/a?b=c");
        let l = request_line(b"GET  /x\r\n\r\n").unwrap();
        assert_eq!((l.target, l.version), (&b"/x"[..], &b""[..]));
        assert!(request_line(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        assert!(request_line(b"GET / FTP/1\r\n").is_none());
        assert!(request_line(b"GET / HTTP/1.1 extra\r\n").is_none());
        assert!(request_line(b"{\"json\": 1}").is_none());
        assert!(request_line(b"").is_none());
        let s = status_line(b"http/1.1  404 Not  Found \r\n\r\n").unwrap();
        assert_eq!(
            (s.version, s.status, s.reason),
            (&b"http/1.1"[..], 404, &b"Not  Found"[..])
        );
        assert_eq!(status_line(b"HTTP/1.0 204\n\n").unwrap().status, 204);
        assert!(status_line(b"HTTP/1.1 2000 OK\r\n").is_none());
        assert!(status_line(b"GET / HTTP/1.1\r\n").is_none());
        let mut msg = GET.to_vec();
        assert!(set_target(&mut msg, b"/new"));
        assert!(msg.starts_with(b"GET /new HTTP/1.1\r\nHost: x\r\n"));
        let mut resp = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        assert!(!set_target(&mut resp, b"/x"));
    }

    #[test]
    fn lists_and_codings() {
        let msg = b"POST / HTTP/1.1\r\nConnection: keep-alive , Upgrade,\r\n\
                    Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert!(has_token(msg, b"connection", b"upgrade"));
        assert!(!has_token(msg, b"connection", b"close"));
        assert!(!is_chunked(msg));
        assert!(is_chunked(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
        ));
        let elements: Vec<&[u8]> = list(b" a,, b ,").collect();
        assert_eq!(elements, [&b"a"[..], b"b"]);
    }

    #[test]
    fn hostile_input_never_panics_and_edits_stay_local() {
        let alphabet: &[u8] = b"\r\n: \tA\0";
        for n in 0..alphabet.len().pow(6) {
            let mut msg = b"GET / HTTP/1.1\r\n".to_vec();
            msg.extend((0..6).map(|k| alphabet[n / alphabet.len().pow(k) % alphabet.len()]));
            for field in fields(&msg) {
                assert!(!field.name.contains(&b'\n') && !field.name.is_empty());
                assert!(field.line.end <= msg.len() && field.value_at.end <= field.line.end);
                assert!(field.line.start <= field.value_at.start);
                let _ = field.value_unfolded();
            }
            let _ = request_line(&msg);
            let _ = status_line(&msg);
            let head_end = layout(&msg).head_end;
            let mut edited = msg.clone();
            set(&mut edited, b"A", b"v", Place::Last).unwrap();
            // Bytes after the head are never touched.
            assert!(edited.ends_with(&msg[head_end..]), "{msg:?}");
            let mut removed = msg.clone();
            remove(&mut removed, b"a");
            assert!(find(&removed, b"a").is_none(), "{msg:?} -> {removed:?}");
            assert!(removed.ends_with(&msg[head_end..]));
        }
        // Long runs cost linear work and no allocation by a stated length.
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b' ', 1 << 20));
        assert_eq!(fields(&big).count(), 0);
        let mut nul = vec![0u8; 1 << 16];
        nul.extend_from_slice(b"\n: x\n");
        assert!(request_line(&nul).is_none());
        assert_eq!(fields(&nul).count(), 0);
    }
}
