//! UTC calendar days, the unit of every stats counter.

use std::fmt;

use super::DomainError;

/// A UTC day, counted in days since 1970-01-01.
///
/// Stats counters are bucketed per day so a report over a range reads
/// `days × shards` small hashes, whatever the traffic was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

impl Day {
    /// The day a Unix timestamp falls on, in UTC.
    pub fn from_unix(secs: u64) -> Self {
        Self((secs / 86_400) as i64)
    }

    /// Today, in UTC.
    pub fn today() -> Self {
        Self::from_unix(super::unix_now())
    }

    /// Days since the epoch.
    pub fn index(self) -> i64 {
        self.0
    }

    /// The next day.
    pub fn succ(self) -> Self {
        Self(self.0 + 1)
    }

    /// `n` days earlier.
    pub fn minus(self, n: i64) -> Self {
        Self(self.0 - n)
    }

    /// Parses `YYYY-MM-DD`, refusing impossible dates such as `2026-02-30`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::invalid("must be a date in the form YYYY-MM-DD");
        let b = raw.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(invalid());
        }
        let number = |s: &str| -> Result<i64, DomainError> {
            if s.bytes().all(|c| c.is_ascii_digit()) {
                s.parse().map_err(|_| invalid())
            } else {
                Err(invalid())
            }
        };
        let (y, m, d) = (
            number(&raw[0..4])?,
            number(&raw[5..7])?,
            number(&raw[8..10])?,
        );
        if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m)
        {
            return Err(invalid());
        }
        Ok(Self(days_from_civil(y, m, d)))
    }

    /// Parses the compact `YYYYMMDD` form back.
    pub fn parse_compact(raw: &str) -> Result<Self, DomainError> {
        if raw.len() != 8 || !raw.is_ascii() {
            return Err(DomainError::invalid("must be a date in the form YYYYMMDD"));
        }
        Self::parse(&format!("{}-{}-{}", &raw[0..4], &raw[4..6], &raw[6..8]))
    }

    /// `(year, month, day)` of this day.
    fn civil(self) -> (i64, i64, i64) {
        // Howard Hinnant's civil_from_days.
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d)
    }

    /// `YYYYMMDD`, the compact form used inside Redis keys.
    pub fn compact(self) -> String {
        let mut out = String::with_capacity(8);
        self.push_compact(&mut out);
        out
    }

    /// Appends `YYYYMMDD` to `out`. Every click and postback builds a counter
    /// key with it, so years 0-9999 skip the formatting machinery.
    pub fn push_compact(self, out: &mut String) {
        let (y, m, d) = self.civil();
        if !(0..=9999).contains(&y) {
            out.push_str(&format!("{y:04}{m:02}{d:02}"));
            return;
        }
        for (value, width) in [(y, 4), (m, 2), (d, 2)] {
            for place in (0..width).rev() {
                let digit = (value / 10_i64.pow(place)) % 10;
                out.push(char::from(b'0' + digit as u8));
            }
        }
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl serde::Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates_across_leap_years_and_centuries() {
        for text in [
            "1970-01-01",
            "2000-02-29",
            "2024-02-29",
            "2026-11-23",
            "2100-03-01",
            "2026-12-31",
        ] {
            assert_eq!(Day::parse(text).map(|d| d.to_string()), Ok(text.to_owned()));
        }
        assert_eq!(Day::parse("1970-01-02").map(Day::index), Ok(1));
        assert_eq!(Day::from_unix(1_795_305_600).to_string(), "2026-11-22");
    }

    #[test]
    fn refuses_impossible_or_malformed_dates() {
        for bad in [
            "2026-02-29",
            "2100-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-1-01",
            "26-11-23",
            "2026/11/23",
            "2026-11-2x",
            "+026-11-23",
        ] {
            assert!(Day::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn compact_form_is_the_display_form_without_dashes_for_every_day() {
        // 0001-01-01 to 9999-12-31 in 97-day steps, plus the edges and beyond.
        let first = Day(-719_162);
        let last = Day(2_932_896);
        assert_eq!(first.to_string(), "0001-01-01");
        assert_eq!(last.to_string(), "9999-12-31");
        let mut day = first;
        while day.index() <= last.index() {
            assert_eq!(day.compact(), day.to_string().replace('-', ""), "{day}");
            day = Day(day.index() + 97);
        }
        assert_eq!(last.compact(), "99991231");
        assert_eq!(Day(last.index() + 1).compact(), "100000101");
    }

    #[test]
    fn compact_form_has_no_separators() {
        assert_eq!(
            Day::parse("2026-01-05").map(Day::compact),
            Ok("20260105".to_owned())
        );
        assert_eq!(Day::parse_compact("20260105"), Day::parse("2026-01-05"));
        assert!(Day::parse_compact("2026015").is_err());
    }
}
