//! Go `time.ParseDuration` syntax (`10s`, `1h30m`, `500ms`, `-1.5s`), used by the
//! DittoFS config (JWT lifetimes), the API server's `?timeout=` and our own flags.

use std::time::Duration;

/// Seconds of a Go duration string, sign included; `None` when malformed.
pub fn parse_go_duration_secs(text: &str) -> Option<f64> {
    let text = text.trim();
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    Some(if negative { -total } else { total })
}

/// A non-negative Go duration as a `Duration`.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    parse_go_duration_secs(text).and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// A clap value parser for duration flags (`--debounce 500ms`).
pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_go_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration; write e.g. 5s, 500ms or 1m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration_secs("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration_secs("-1.5s"), Some(-1.5));
        assert_eq!(parse_go_duration("-1s"), None);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["10", "s", "5d", "", "1.2.3s", "15 minutes"] {
            assert_eq!(parse_go_duration_secs(bad), None, "{bad}");
        }
    }
}
