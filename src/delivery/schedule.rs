//! When a failed postback delivery is tried again.
//!
//! The schedule is the list of delays before each retry
//! (`CLICKBACK_DELIVERY_SCHEDULE`, [`DEFAULT`] when unset): after the first
//! failed attempt the delivery waits the first delay, after the first retry the
//! second, and when the list is used up the delivery is dead. The delays carry a
//! deterministic jitter of ±10 % ([`Schedule::delay_with_jitter`]), so jobs that
//! failed together (an affiliate's server down for an hour) do not all come
//! back in the same second, while a test can still predict the bounds.

use std::time::Duration;

/// The default schedule: 8 retries over about 45 hours.
pub const DEFAULT: &str = "10s,1m,5m,30m,2h,6h,12h,24h";

/// The most retries a schedule may list.
const MAX_RETRIES: usize = 50;

/// The longest single delay: a week.
const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The delays before each retry of a failed delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Delay before retry `i` at index `i`; never empty, each in `1ms..=7d`.
    delays: Vec<Duration>,
}

impl Schedule {
    /// Reads a comma-separated list of delays such as `10s,1m,5m,2h`: each a
    /// positive whole number followed by `ms`, `s`, `m` or `h`, whitespace
    /// around items allowed, at most 50 items of at most 7 days each. The
    /// error is a sentence naming the offending item.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let items: Vec<&str> = raw.split(',').map(str::trim).collect();
        if items.len() > MAX_RETRIES {
            return Err(format!(
                "lists {} delays; at most {MAX_RETRIES} are allowed",
                items.len()
            ));
        }
        let delays = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| parse_delay(item).map_err(|why| format!("item {}: {why}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { delays })
    }

    /// The schedule in [`DEFAULT`].
    pub fn default_schedule() -> Self {
        Self::parse(DEFAULT).expect("the default schedule is valid")
    }

    /// How many retries follow the first attempt before a delivery is dead.
    pub fn retries(&self) -> usize {
        self.delays.len()
    }

    /// Delay before retry number `retry` (0-based: after the first failed
    /// attempt, retry 0), `None` when no retry is left (the delivery is dead).
    pub fn delay(&self, retry: usize) -> Option<Duration> {
        self.delays.get(retry).copied()
    }

    /// [`Schedule::delay`] moved by a jitter within ±10 % that depends only on
    /// `seed` (say the delivery id and the attempt number), so deliveries that
    /// failed together spread out, and the same seed always gives the same
    /// delay.
    pub fn delay_with_jitter(&self, retry: usize, seed: &str) -> Option<Duration> {
        let delay = self.delay(retry)?;
        // 900‰ ..= 1100‰ of the delay, picked by the seed.
        let per_mille = 900 + u128::from(fnv1a(seed.as_bytes()) % 201);
        let nanos = delay.as_nanos() * per_mille / 1000;
        // At most 7 days × 1.1, far below u64::MAX nanoseconds.
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Self::default_schedule()
    }
}

/// One item of the schedule, already trimmed.
fn parse_delay(item: &str) -> Result<Duration, String> {
    if item.is_empty() {
        return Err("is empty".to_owned());
    }
    let digits_end = item
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(item.len());
    let (number, unit) = item.split_at(digits_end);
    if number.is_empty() {
        return Err(format!("{item:?} does not start with a number"));
    }
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("{item:?} has no unit (ms, s, m or h)")),
        _ => return Err(format!("{item:?} has an unknown unit (use ms, s, m or h)")),
    };
    let too_long = || format!("{item:?} is longer than 7 days");
    let number: u64 = number.parse().map_err(|_| too_long())?;
    if number == 0 {
        return Err(format!("{item:?} is zero; a retry needs a delay"));
    }
    let ms = number.checked_mul(per_unit_ms).ok_or_else(too_long)?;
    let delay = Duration::from_millis(ms);
    if delay > MAX_DELAY {
        return Err(too_long());
    }
    Ok(delay)
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike a seeded hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_default_schedule_retries_eight_times_over_about_45_hours() {
        let schedule = Schedule::default_schedule();

        assert_eq!(schedule.retries(), 8);
        assert_eq!(schedule.delay(0), Some(secs(10)));
        assert_eq!(schedule.delay(1), Some(secs(60)));
        assert_eq!(schedule.delay(7), Some(secs(24 * 3600)));
        assert_eq!(schedule.delay(8), None);
        let total: Duration = (0..8).filter_map(|i| schedule.delay(i)).sum();
        assert_eq!(
            total,
            secs(10 + 60 + 300 + 1800 + 7200 + 21600 + 43200 + 86400)
        );
        assert_eq!(Schedule::default(), schedule);
    }

    #[test]
    fn every_unit_and_surrounding_whitespace_is_understood() {
        let schedule = Schedule::parse(" 250ms , 3s,\t2m ,1h ").expect("valid");

        assert_eq!(schedule.retries(), 4);
        assert_eq!(schedule.delay(0), Some(Duration::from_millis(250)));
        assert_eq!(schedule.delay(1), Some(secs(3)));
        assert_eq!(schedule.delay(2), Some(secs(120)));
        assert_eq!(schedule.delay(3), Some(secs(3600)));
        assert_eq!(schedule.delay(4), None);
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason_naming_the_item() {
        for (raw, reason) in [
            ("", "item 1: is empty"),
            ("10s,,1m", "item 2: is empty"),
            ("10s,", "item 2: is empty"),
            ("0s", "item 1: \"0s\" is zero; a retry needs a delay"),
            ("10", "item 1: \"10\" has no unit (ms, s, m or h)"),
            (
                "10d",
                "item 1: \"10d\" has an unknown unit (use ms, s, m or h)",
            ),
            (
                "10 s",
                "item 1: \"10 s\" has an unknown unit (use ms, s, m or h)",
            ),
            (
                "1.5s",
                "item 1: \"1.5s\" has an unknown unit (use ms, s, m or h)",
            ),
            ("-1s", "item 1: \"-1s\" does not start with a number"),
            ("s", "item 1: \"s\" does not start with a number"),
            ("169h", "item 1: \"169h\" is longer than 7 days"),
            (
                "99999999999999999999s",
                "item 1: \"99999999999999999999s\" is longer than 7 days",
            ),
            (
                "18446744073709551615h",
                "item 1: \"18446744073709551615h\" is longer than 7 days",
            ),
        ] {
            assert_eq!(Schedule::parse(raw), Err(reason.to_owned()), "{raw:?}");
        }
    }

    #[test]
    fn up_to_fifty_delays_of_up_to_seven_days_are_allowed() {
        let fifty = vec!["168h"; 50].join(",");
        let fifty_one = vec!["1s"; 51].join(",");

        assert_eq!(Schedule::parse(&fifty).map(|s| s.retries()), Ok(50));
        assert_eq!(
            Schedule::parse(&fifty_one),
            Err("lists 51 delays; at most 50 are allowed".to_owned())
        );
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_is_the_same_for_the_same_seed() {
        let schedule = Schedule::parse("100s,1h").expect("valid");
        let base = secs(100);

        let mut seen = std::collections::HashSet::new();
        for n in 0..1000 {
            let seed = format!("delivery-{n}:1");
            let delay = schedule
                .delay_with_jitter(0, &seed)
                .expect("retry 0 exists");
            assert!(
                delay >= base * 9 / 10 && delay <= base * 11 / 10,
                "{delay:?}"
            );
            assert_eq!(schedule.delay_with_jitter(0, &seed), Some(delay));
            seen.insert(delay);
        }

        assert!(seen.len() > 100, "only {} distinct delays", seen.len());
        assert_eq!(schedule.delay_with_jitter(2, "any"), None);
    }

    #[test]
    fn jitter_is_stable_across_builds() {
        // FNV-1a of "" is 0xcbf29ce484222325; % 201 = 197 → 1097 ‰.
        let schedule = Schedule::parse("1000s").expect("valid");

        assert_eq!(schedule.delay_with_jitter(0, ""), Some(secs(1097)));
    }
}
