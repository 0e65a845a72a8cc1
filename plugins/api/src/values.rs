//! Flag value grammars shared by every plugin: GoReplay sizes (`32mb` = 32 × 2^20), Go durations
//! (`1.5s`, `2h45m`), and the `addr|N` / `addr|N%` rate-limit suffix.

use std::time::Duration;

/// Parses a size: digits (with `_`, or a `0x`/`0o`/`0b` prefix) and an optional unit
/// `b`, `kb`/`k`, `mb`/`m`, `gb`/`g`, `tb`/`t` (powers of 1024, any case).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    if let Some(value) = parse_integer(&lower) {
        return Ok(value);
    }
    const UNITS: [(&str, u64); 9] = [
        ("kb", 1 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("tb", 1 << 40),
        ("k", 1 << 10),
        ("m", 1 << 20),
        ("g", 1 << 30),
        ("t", 1 << 40),
        ("b", 1),
    ];
    let (value, multiplier) = UNITS
        .iter()
        .find_map(|(unit, multiplier)| {
            let number = lower.strip_suffix(unit)?;
            Some((parse_integer(number)?, *multiplier))
        })
        .ok_or_else(|| format!("invalid size {text:?} (examples: 512kb, 32mb, 1g)"))?;
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

fn parse_integer(number: &str) -> Option<u64> {
    let clean: String = number.chars().filter(|&c| c != '_').collect();
    let (digits, radix) = match clean.get(..2) {
        Some("0x") => (&clean[2..], 16),
        Some("0o") => (&clean[2..], 8),
        Some("0b") => (&clean[2..], 2),
        _ => (&clean[..], 10),
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Parses a Go duration: `0`, or a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` (e.g. `300ms`, `1.5s`, `2h45m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || format!("invalid duration {text:?} (examples: 500ms, 2s, 1m30s)");
    if trimmed.is_empty() {
        return Err(invalid());
    }
    let mut rest = trimmed;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// A rate limit from an `addr|N` (per second) or `addr|N%` (percentage) suffix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit {
    /// At most this many requests per second; the rest are dropped.
    PerSecond(u64),
    /// This percentage of requests (a random sample); on file inputs, a speed factor.
    Percent(f64),
}

/// Splits `addr|N` or `addr|N%` into the address and its limit.
pub fn split_limit(value: &str) -> Result<(String, Option<Limit>), String> {
    let Some((address, suffix)) = value.split_once('|') else {
        return Ok((value.to_string(), None));
    };
    let suffix = suffix.split('|').next().unwrap_or_default().trim();
    let limit = if let Some(percent) = suffix.strip_suffix('%') {
        let p: f64 = percent
            .trim()
            .parse()
            .ok()
            .filter(|p: &f64| p.is_finite() && *p >= 0.0)
            .ok_or_else(|| format!("invalid rate limit {suffix:?} in {value:?} (use N or N%)"))?;
        Limit::Percent(p)
    } else {
        let n: u64 = suffix
            .parse()
            .map_err(|_| format!("invalid rate limit {suffix:?} in {value:?} (use N or N%)"))?;
        Limit::PerSecond(n)
    };
    Ok((address.to_string(), Some(limit)))
}

/// A `clap` value parser for sizes.
pub fn size_value(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// A `clap` value parser for durations.
pub fn duration_value(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// A `clap` value parser for booleans written the Go way (`true`, `false`, `1`, `0`, `t`, `f`).
pub fn bool_value(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "on" => Ok(true),
        "0" | "f" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("invalid boolean {text:?} (use true or false)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_goreplay_with_short_units() {
        assert_eq!(parse_size("42mb"), Ok(42 << 20));
        assert_eq!(parse_size("32m"), Ok(32 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_size("5242880"), Ok(5242880));
        assert_eq!(parse_size("0x12gB"), Ok(0x12 << 30));
        assert_eq!(parse_size("0b_10010001111_1kb"), Ok(0b100100011111 << 10));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert!(parse_size("12xb").is_err());
        assert!(parse_size("mb").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations_follow_go() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h45m"), Ok(Duration::from_secs(9900)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn limits_split() {
        assert_eq!(split_limit("a.gor"), Ok(("a.gor".into(), None)));
        assert_eq!(
            split_limit("a.gor|200%"),
            Ok(("a.gor".into(), Some(Limit::Percent(200.0))))
        );
        assert_eq!(
            split_limit("http://x|10"),
            Ok(("http://x".into(), Some(Limit::PerSecond(10))))
        );
        assert!(split_limit("x|ten").is_err());
        assert!(split_limit("x|-5%").is_err());
    }
}
