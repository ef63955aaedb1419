//! Go `time.ParseDuration` syntax (`10s`, `1h30m`, `500ms`, `-1.5s`), used by the
//! DittoFS config (JWT lifetimes), the API server's `?timeout=` and our own flags.

use std::time::Duration;

/// The sign and the terms (number as written, nanoseconds per unit) of a Go
/// duration string; `None` when malformed. `"0"` is the one unitless term.
fn terms(text: &str) -> Option<(bool, Vec<(&str, u64)>)> {
    let text = text.trim();
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some((negative, Vec::new()));
    }
    if rest.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        out.push((number, nanos_per_unit));
    }
    Some((negative, out))
}

/// Seconds of a Go duration string, sign included; `None` when malformed.
pub fn parse_go_duration_secs(text: &str) -> Option<f64> {
    let (negative, terms) = terms(text)?;
    let mut total = 0.0;
    for (number, nanos_per_unit) in terms {
        let number: f64 = number.parse().ok()?;
        total += number * nanos_per_unit as f64 / 1e9;
    }
    Some(if negative { -total } else { total })
}

/// Nanoseconds of a Go duration string, as `time.ParseDuration` computes them
/// (whole part exact, fraction truncated), sign included; `None` when malformed
/// or beyond Go's ±292 years. For comparing durations exactly.
pub fn parse_go_duration_nanos(text: &str) -> Option<i64> {
    let (negative, terms) = terms(text)?;
    let mut total: i128 = 0;
    for (number, nanos_per_unit) in terms {
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return None;
        }
        let unit = i128::from(nanos_per_unit);
        if !whole.is_empty() {
            total = total.checked_add(whole.parse::<i128>().ok()?.checked_mul(unit)?)?;
        }
        let mut scale = 1i128;
        let mut part = 0i128;
        for digit in fraction.bytes() {
            // Digits past nanosecond precision of an hour add nothing.
            if scale >= 1_000_000_000_000_000 {
                break;
            }
            part = part * 10 + i128::from(digit - b'0');
            scale *= 10;
        }
        total += part * unit / scale;
        if total > i128::from(i64::MAX) {
            return None;
        }
    }
    i64::try_from(if negative { -total } else { total }).ok()
}

/// A snapshot policy's interval as DittoFS v0.29 reads it
/// (`pkg/schedule/interval.go`, `ParseInterval`): trimmed; `@hourly`, `@daily`
/// or `@weekly` in any case, or a Go duration above zero. Nanoseconds, or why not.
pub fn parse_snapshot_interval(text: &str) -> Result<i64, String> {
    const HOUR: i64 = 3_600_000_000_000;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("is empty".into());
    }
    match trimmed.to_ascii_lowercase().as_str() {
        "@hourly" => return Ok(HOUR),
        "@daily" => return Ok(24 * HOUR),
        "@weekly" => return Ok(7 * 24 * HOUR),
        _ => {}
    }
    if trimmed.starts_with('@') {
        return Err(format!(
            "{trimmed:?} is not a shorthand DittoFS knows (@hourly, @daily, @weekly)"
        ));
    }
    match parse_go_duration_nanos(trimmed) {
        None => Err(format!("{trimmed:?} is not a Go duration")),
        Some(nanos) if nanos <= 0 => Err(format!("{trimmed:?} is not above zero")),
        Some(nanos) => Ok(nanos),
    }
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
    fn nanoseconds_are_exact() {
        assert_eq!(parse_go_duration_nanos("24h0m0s"), Some(86_400_000_000_000));
        assert_eq!(parse_go_duration_nanos("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration_nanos("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration_nanos("0"), Some(0));
        assert_eq!(parse_go_duration_nanos("-2m"), Some(-120_000_000_000));
        assert_eq!(parse_go_duration_nanos("300µs"), Some(300_000));
        assert_eq!(parse_go_duration_nanos("."), None);
        assert_eq!(parse_go_duration_nanos("1.2.3s"), None);
        assert_eq!(parse_go_duration_nanos("3000000h"), None, "past Go's range");
        assert_eq!(
            parse_go_duration_nanos("1h47261439850130342147690917h"),
            None,
            "a sum past i128 is refused, not an overflow"
        );
    }

    #[test]
    fn intervals_as_dittofs_reads_them() {
        let hour = 3_600_000_000_000;
        assert_eq!(parse_snapshot_interval("@daily"), Ok(24 * hour));
        assert_eq!(parse_snapshot_interval(" @HOURLY "), Ok(hour));
        assert_eq!(parse_snapshot_interval("@Weekly"), Ok(7 * 24 * hour));
        assert_eq!(parse_snapshot_interval("6h"), Ok(6 * hour));
        for bad in ["", "  ", "@monthly", "0", "0s", "-1h", "daily", "1d"] {
            assert!(parse_snapshot_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["10", "s", "5d", "", "1.2.3s", "15 minutes"] {
            assert_eq!(parse_go_duration_secs(bad), None, "{bad}");
        }
    }
}
