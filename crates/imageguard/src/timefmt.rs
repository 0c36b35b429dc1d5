//! Times for people: UTC formatting and parsing of `--since` values, without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-24 17:03:09Z` for Unix nanoseconds.
pub fn format_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Parse `--since`: a duration ago (`90s`, `15m`, `2h`, `7d`), Unix seconds (`@1700000000`), or a
/// UTC date/time (`2026-11-24`, `2026-11-24T10:00:00`, `2026-11-24 10:00`).
pub fn parse_since(s: &str, now_ns: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Some(secs) = s.strip_prefix('@') {
        return secs
            .parse::<i64>()
            .map(|v| v.saturating_mul(1_000_000_000))
            .map_err(|_| format!("bad Unix time {s:?}"));
    }
    let unit = s.chars().last().unwrap_or(' ');
    if let (Some(mult), Ok(n)) = (
        match unit {
            's' => Some(1),
            'm' => Some(60),
            'h' => Some(3600),
            'd' => Some(86_400),
            _ => None,
        },
        s[..s.len().saturating_sub(1)].parse::<i64>(),
    ) {
        return Ok(now_ns.saturating_sub(n.saturating_mul(mult).saturating_mul(1_000_000_000)));
    }
    let s = s.trim_end_matches('Z');
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, t),
        None => (s, "00:00:00"),
    };
    let dp: Vec<&str> = date.split('-').collect();
    let tp: Vec<&str> = time.split(':').collect();
    let bad = || format!("cannot read time {s:?} (try 15m, 2h, 2026-11-24 or 2026-11-24T10:00:00)");
    if dp.len() != 3 || tp.len() < 2 {
        return Err(bad());
    }
    let num = |v: &str| v.parse::<i64>().map_err(|_| bad());
    let (y, mo, d) = (num(dp[0])?, num(dp[1])?, num(dp[2])?);
    let (h, mi, se) = (
        num(tp[0])?,
        num(tp[1])?,
        if tp.len() > 2 { num(tp[2])? } else { 0 },
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    // Saturate: times past 2262 do not fit in i64 nanoseconds.
    Ok((days * 86_400 + h * 3600 + mi * 60 + se).saturating_mul(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let t = parse_since("2026-11-24T17:03:09Z", 0).unwrap();
        assert_eq!(format_ns(t), "2026-11-24 17:03:09Z");
        assert_eq!(format_ns(0), "1970-01-01 00:00:00Z");
        assert_eq!(
            parse_since("2000-02-29", 0).unwrap(),
            951_782_400 * 1_000_000_000
        );
        assert_eq!(parse_since("@10", 0).unwrap(), 10_000_000_000);
        assert_eq!(
            parse_since("15m", 1_000 * 1_000_000_000).unwrap(),
            100 * 1_000_000_000
        );
        assert!(parse_since("yesterday", 0).is_err());
        assert_eq!(parse_since("2999-01-01", 0).unwrap(), i64::MAX);
        assert!(parse_since("2026-13-01", 0).is_err());
    }
}
