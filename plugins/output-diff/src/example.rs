//! What the report shows of a message: normalised, its credentials masked, cut to 4 KiB.

use crate::normalise::Normalised;

/// The most of one message an example shows.
pub const MAX_SHOWN: usize = 4096;
/// What a masked value is shown as.
pub const MASK: &str = "***";
/// Header fields whose values are masked.
const MASKED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// `message` as text, with credentials masked and cut to [`MAX_SHOWN`] bytes.
pub fn shown(message: &Normalised) -> String {
    let mut text = String::with_capacity(256);
    text.push_str(&message.start_line);
    text.push_str("\r\n");
    for field in &message.fields {
        text.push_str(&field.name);
        text.push_str(": ");
        if MASKED.contains(&field.lower.as_str()) {
            text.push_str(&masked_value(&field.lower, &field.value));
        } else {
            text.push_str(&field.value);
        }
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(&String::from_utf8_lossy(&message.body));
    cut(text)
}

/// A cookie keeps its name (the part a reader needs to tell cookies apart); anything else is
/// masked whole.
fn masked_value(lower: &str, value: &str) -> String {
    match lower {
        "set-cookie" => match value.split_once('=') {
            Some((name, _)) => format!("{name}={MASK}"),
            None => MASK.to_string(),
        },
        "cookie" => value
            .split(';')
            .map(|c| match c.split_once('=') {
                Some((name, _)) => format!("{}={MASK}", name.trim()),
                None => MASK.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => MASK.to_string(),
    }
}

/// `text` cut to [`MAX_SHOWN`] bytes at a character boundary, saying how much was left out.
pub fn cut(mut text: String) -> String {
    let Some(end) = cut_point(&text, MAX_SHOWN) else {
        return text;
    };
    let more = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("…[{more} bytes more]"));
    text
}

/// Where to cut `text` to at most `max` bytes without splitting a character; `None` when it
/// is short enough.
pub fn cut_point(text: &str, max: usize) -> Option<usize> {
    if text.len() <= max {
        return None;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_long_bodies_cut() {
        let mut raw =
            b"GET / HTTP/1.1\r\nAuthorization: Bearer secret\r\nCookie: a=1; b=2\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'x', 5000));
        let text = shown(&Normalised::new(&raw, 1 << 20));
        assert!(!text.contains("secret") && !text.contains("a=1"));
        assert!(text.contains("Authorization: ***"));
        assert!(text.contains("Cookie: a=***; b=***"));
        assert!(text.ends_with("bytes more]"));
        let set = Normalised::new(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc; Path=/\r\n\r\n", 0);
        assert!(shown(&set).contains("Set-Cookie: sid=***"));
        let long = cut("é".repeat(3000));
        assert!(long.starts_with(&"é".repeat(2048)) && long.ends_with("[1904 bytes more]"));
    }
}
