//! Timestamps as text: ISO 8601 read into microseconds since 1970 (UTC when the text says an
//! offset or `Z`; otherwise as written, pandas' naive time) and written back. Shared by the
//! PostgreSQL source and the `resample` step.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
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

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// Read `YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|±HH[:MM]]`: microseconds since 1970 and
/// whether the text gave a zone (then the time is UTC).
pub fn parse_iso(text: &str) -> Option<(i64, bool)> {
    let t = text.trim().as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if t.len() < 10 || t[4] != b'-' || t[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(&t[..4])?, num(&t[5..7])?, num(&t[8..10])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut us = days_from_civil(y, mo as u32, d as u32) * DAY_US;
    let mut rest = &t[10..];
    let mut zoned = false;
    if let Some((&sep, r)) = rest.split_first() {
        if sep != b'T' && sep != b' ' {
            return None;
        }
        if r.len() < 5 || r[2] != b':' {
            return None;
        }
        let (h, mi) = (num(&r[..2])?, num(&r[3..5])?);
        if h > 23 || mi > 59 {
            return None;
        }
        us += (h * 3600 + mi * 60) * 1_000_000;
        rest = &r[5..];
        if rest.first() == Some(&b':') {
            let s = num(rest.get(1..3)?)?;
            if s > 60 {
                return None;
            }
            us += s * 1_000_000;
            rest = &rest[3..];
            if rest.first() == Some(&b'.') {
                let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 0 {
                    return None;
                }
                let frac = &rest[1..1 + digits];
                let mut f = 0i64;
                for (i, c) in frac.iter().take(6).enumerate() {
                    f += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
                }
                us += f;
                rest = &rest[1 + digits..];
            }
        }
        match rest {
            [] => {}
            [b'Z'] => zoned = true,
            [sign @ (b'+' | b'-'), z @ ..] => {
                let (zh, zm) = match z.len() {
                    2 => (num(z)?, 0),
                    4 => (num(&z[..2])?, num(&z[2..])?),
                    5 if z[2] == b':' => (num(&z[..2])?, num(&z[3..])?),
                    _ => return None,
                };
                let off = (zh * 3600 + zm * 60) * 1_000_000;
                us -= if *sign == b'+' { off } else { -off };
                zoned = true;
            }
            _ => return None,
        }
    }
    Some((us, zoned))
}

/// [`format_iso`] into `out` (cleared first), without allocating: the PostgreSQL source
/// writes every timestamp of a range this way.
pub fn format_iso_into(us: i64, zoned: bool, out: &mut Vec<u8>) {
    out.clear();
    let days = us.div_euclid(DAY_US);
    let rem = us.rem_euclid(DAY_US);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        out.extend_from_slice(format_iso(us, zoned).as_bytes());
        return;
    }
    let two = |out: &mut Vec<u8>, v: i64| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, i64::from(m));
    out.push(b'-');
    two(out, i64::from(d));
    out.push(b'T');
    two(out, rem / 3_600_000_000);
    out.push(b':');
    two(out, rem / 60_000_000 % 60);
    out.push(b':');
    two(out, rem / 1_000_000 % 60);
    let mut f = rem % 1_000_000;
    if f != 0 {
        out.push(b'.');
        let mut digits = 6;
        while f % 10 == 0 {
            f /= 10;
            digits -= 1;
        }
        let start = out.len();
        for _ in 0..digits {
            out.push(b'0' + (f % 10) as u8);
            f /= 10;
        }
        out[start..].reverse();
    }
    if zoned {
        out.push(b'Z');
    }
}

/// Microseconds since 1970 as `YYYY-MM-DDTHH:MM:SS[.ffffff]` (the fraction without trailing
/// zeros, none when whole), `Z` after it for a zoned time.
pub fn format_iso(us: i64, zoned: bool) -> String {
    let days = us.div_euclid(DAY_US);
    let rem = us.rem_euclid(DAY_US);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, f) = (
        rem / 3_600_000_000,
        rem / 60_000_000 % 60,
        rem / 1_000_000 % 60,
        rem % 1_000_000,
    );
    let mut t = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    if f != 0 {
        let frac = format!("{f:06}");
        t.push('.');
        t.push_str(frac.trim_end_matches('0'));
    }
    if zoned {
        t.push('Z');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_read_and_write_back() {
        for (text, us, zoned) in [
            ("1970-01-01T00:00:00", 0, false),
            (
                "2000-02-29 12:30",
                (days_from_civil(2000, 2, 29) * 86_400 + 45_000) * 1_000_000,
                false,
            ),
            (
                "2026-12-06T07:05:30.25Z",
                (days_from_civil(2026, 12, 6) * 86_400 + 25_530) * 1_000_000 + 250_000,
                true,
            ),
            (
                "2026-12-06T09:05:30+02:00",
                (days_from_civil(2026, 12, 6) * 86_400 + 25_530) * 1_000_000,
                true,
            ),
            ("1969-12-31T23:59:59.9999999", -1, false),
        ] {
            assert_eq!(parse_iso(text), Some((us, zoned)), "{text}");
        }
        assert_eq!(format_iso(-1, false), "1969-12-31T23:59:59.999999");
        assert_eq!(format_iso(250_000, true), "1970-01-01T00:00:00.25Z");
        for bad in [
            "",
            "2026-13-01",
            "2026-01-01T25:00",
            "2026-01-01T00:00:00junk",
            "yesterday",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
        // the allocation-free writer gives the same text
        let mut buf = Vec::new();
        for us in [
            0,
            -1,
            250_000,
            86_399_999_999,
            1_772_323_530_123_400,
            -62_135_596_800_000_000,
        ] {
            for zoned in [false, true] {
                format_iso_into(us, zoned, &mut buf);
                assert_eq!(
                    std::str::from_utf8(&buf).expect("text"),
                    format_iso(us, zoned)
                );
            }
        }
        for z in [-1_000_000, 0, 11_016, 20_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
