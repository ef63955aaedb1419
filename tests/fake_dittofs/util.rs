//! Small re-implementations of the Go library behaviour the DittoFS handlers
//! lean on: UUIDs, RFC 3339 timestamps, `%q` quoting, `time.ParseDuration` /
//! `Duration.String`, `internal/bytesize`, `path.Match` pattern validation,
//! and URL query / path unescaping.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes (ring's system RNG).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("system random number generator");
    buf
}

/// A version-4 UUID string, as `uuid.New().String()` (google/uuid) gives.
pub fn new_uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An opaque bearer token (the real server signs an HS256 JWT; clients must
/// treat it as opaque, so the fake does not bother).
pub fn new_token() -> String {
    format!("fake-dittofs.{}", hex::encode(random_bytes::<24>()))
}

/// A wall-clock instant.
pub type Time = SystemTime;

/// `time.Time` as Go's `encoding/json` writes it (RFC 3339 with nanoseconds,
/// trailing zeros trimmed). The real server runs in UTC in a pod, so `Z`.
pub fn rfc3339_nano(t: Time) -> String {
    let ts = jiff::Timestamp::try_from(t).expect("time in range");
    ts.to_string()
}

/// `t.UTC().Format(time.RFC3339)` (whole seconds).
pub fn rfc3339_secs(t: Time) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let ts = jiff::Timestamp::from_second(secs).expect("time in range");
    ts.to_string()
}

/// Unix seconds, truncated (jwt `NumericDate` precision).
pub fn unix_secs(t: Time) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64
}

/// Go's `%q` / `strconv.Quote` for the strings the handlers quote.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `Duration.String()` for a whole number of seconds (every duration the
/// fake renders is whole seconds: retention TTLs are stored as seconds, uptime
/// is rounded to seconds).
pub fn go_duration_secs(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, (a / 60) % 60, a % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// Go's `Duration.String()` for any number of nanoseconds: `24h0m0s`, `1.5s`,
/// `1m30.25s`, `500ms`, `300µs`, `0s`.
pub fn go_duration_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    // A fraction with its trailing zeros (and a lone dot) trimmed.
    let fraction = |value: u64, digits: u32| -> String {
        let scale = 10u64.pow(digits);
        let (whole, rest) = (value / scale, value % scale);
        if rest == 0 {
            return whole.to_string();
        }
        let frac = format!("{rest:0width$}", width = digits as usize);
        format!("{whole}.{}", frac.trim_end_matches('0'))
    };
    if u < 1_000_000_000 {
        let (value, digits, unit) = if u < 1_000 {
            (u, 0, "ns")
        } else if u < 1_000_000 {
            (u, 3, "\u{b5}s")
        } else {
            (u, 6, "ms")
        };
        return format!("{sign}{}{unit}", fraction(value, digits));
    }
    let secs = fraction(u % 60_000_000_000, 9);
    let mins = u / 60_000_000_000;
    let (h, m) = (mins / 60, mins % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{sign}{m}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    }
}

/// Go's `time.ParseDuration`, returning nanoseconds, with Go's error texts.
pub fn go_parse_duration(input: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(input));
    let mut s = input;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    let mut total_int: i128 = 0;
    while !s.is_empty() {
        // The next character must be [0-9.].
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_end = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_end];
        s = &s[int_end..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_end = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_end];
            s = &rest[frac_end..];
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
        }
        let unit_end = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        let unit = &s[..unit_end];
        s = &s[unit_end..];
        if unit.is_empty() {
            return Err(format!(
                "time: missing unit in duration {}",
                go_quote(input)
            ));
        }
        let per: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(input)
                ));
            }
        };
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<i128>().map_err(|_| invalid())?
        };
        total_int = total_int
            .checked_add(whole.checked_mul(per).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            let f: f64 = format!("0.{frac_part}").parse().unwrap_or(0.0);
            total += f * per as f64;
        }
        if total_int > i64::MAX as i128 {
            return Err(invalid());
        }
    }
    let mut ns = total_int + total as i128;
    if ns > i64::MAX as i128 {
        return Err(invalid());
    }
    if neg {
        ns = -ns;
    }
    Ok(ns)
}

/// `internal/bytesize.ParseByteSize` (case-insensitive decimal/binary units).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r');
    if s.trim_matches(is_space).is_empty() {
        return Err("empty byte size string".to_string());
    }
    let bad = || format!("invalid byte size format: {}", go_quote(s));
    // ^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$  (case-insensitive)
    let t = s.trim_start_matches(is_space);
    let int_len = t.bytes().take_while(u8::is_ascii_digit).count();
    if int_len == 0 {
        return Err(bad());
    }
    let mut num_len = int_len;
    let after_int = &t[int_len..];
    if let Some(rest) = after_int.strip_prefix('.') {
        let frac = rest.bytes().take_while(u8::is_ascii_digit).count();
        if frac > 0 {
            num_len += 1 + frac;
        }
    }
    let num_str = &t[..num_len];
    let rest = t[num_len..].trim_start_matches(is_space);
    let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
    let unit_raw = &rest[..unit_len];
    if !rest[unit_len..].trim_matches(is_space).is_empty() {
        return Err(bad());
    }
    let unit = unit_raw.to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return Err(format!("unknown byte size unit: {}", go_quote(unit_raw))),
    };
    if num_str.contains('.') {
        let n: f64 = num_str
            .parse()
            .map_err(|_| format!("invalid number in byte size: {}", go_quote(num_str)))?;
        return Ok((n * mult as f64) as u64);
    }
    let n: u64 = num_str
        .parse()
        .map_err(|_| format!("invalid number in byte size: {}", go_quote(num_str)))?;
    Ok(n.wrapping_mul(mult))
}

/// `bytesize.ByteSize.String()`: two decimals in the largest binary unit.
pub fn format_byte_size(b: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;
    if b >= TIB {
        format!("{:.2}TiB", b as f64 / TIB as f64)
    } else if b >= GIB {
        format!("{:.2}GiB", b as f64 / GIB as f64)
    } else if b >= MIB {
        format!("{:.2}MiB", b as f64 / MIB as f64)
    } else if b >= KIB {
        format!("{:.2}KiB", b as f64 / KIB as f64)
    } else {
        format!("{b}B")
    }
}

/// Whether Go's `path.Match` would reject `pattern` with `ErrBadPattern`
/// (unclosed or empty character class, bad range, trailing backslash).
pub fn path_pattern_is_valid(pattern: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return false;
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if i < chars.len() && chars[i] == '^' {
                    i += 1;
                }
                let mut n = 0;
                loop {
                    if i >= chars.len() {
                        return false;
                    }
                    if chars[i] == ']' && n > 0 {
                        i += 1;
                        break;
                    }
                    // one class char (possibly escaped), optional "-hi"
                    let take = |i: &mut usize| -> bool {
                        if *i >= chars.len() {
                            return false;
                        }
                        match chars[*i] {
                            '-' | ']' => false,
                            '\\' => {
                                *i += 2;
                                *i <= chars.len()
                            }
                            _ => {
                                *i += 1;
                                true
                            }
                        }
                    };
                    if !take(&mut i) {
                        return false;
                    }
                    if i < chars.len() && chars[i] == '-' {
                        i += 1;
                        if !take(&mut i) {
                            return false;
                        }
                    }
                    n += 1;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// `url.PathUnescape`-like decoding; `None` when an escape is malformed.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `r.URL.Query().Get(key)`: the first value, `+` decoded as a space.
pub fn query_get(query: Option<&str>, key: &str) -> String {
    for pair in query.unwrap_or("").split(['&', ';']) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(&k.replace('+', " ")).unwrap_or_default();
        if k == key {
            return percent_decode(&v.replace('+', " ")).unwrap_or_default();
        }
    }
    String::new()
}

/// `time.Duration` truncated to whole seconds as Go's `int64(d.Seconds())`.
pub fn whole_secs(d: Duration) -> i64 {
    d.as_secs() as i64
}
