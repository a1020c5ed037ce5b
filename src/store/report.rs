//! Report counters: what reports by hour, time zone, sub-ID, source and
//! goal are summed from, beside the exact per-day counters.
//!
//! Every click and every conversion move adds to a [`Tally`]: per UTC hour,
//! offer, affiliate and the values of each [`Dimension`]. A store turns the
//! tally into [`Cell`]s, one hash per UTC day and dimension (and one without
//! a dimension, for hours alone), whose fields are
//!
//! - `HH|offer|aff|code` without a dimension,
//! - `HH|offer|aff|code|value` with one (the value last: it may hold `|`).
//!
//! **The bound.** Each dimension keeps at most [`VALUES_PER_DAY`] distinct
//! non-empty values per UTC day, across all shards and instances. A value is
//! admitted the first time it is counted while the day has room, and from
//! then on all of that day's counts of it are its own; a value first seen
//! when the day is full is counted, all day, in the bucket [`OTHER`]. So a
//! value is never split between itself and "other", and a day's hash of
//! one dimension holds at most `(VALUES_PER_DAY + 2) × 24 × offer-affiliate
//! pairs × counters` fields, however many values affiliates send. The empty
//! value (a click without that sub) is always counted as itself.
//!
//! Both stores apply the same rule: the Redis store in
//! `scripts/report.lua`, the memory store in [`Book`]; the conformance suite
//! checks that they agree.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::domain::counter::{Counter, Dimension};
use crate::domain::delivery::DeliveryContext;
use crate::domain::{AffiliateId, Click, ConversionStatus, Day, Identity, Money, OfferId};
use crate::store::DayCounters;

/// Distinct values of one dimension counted per UTC day; later values go
/// to [`OTHER`].
pub const VALUES_PER_DAY: usize = 10_000;

/// The stored value of the "other" bucket: NUL, which no real value can
/// hold (the query reader refuses it).
pub const OTHER: &str = "\0";

/// Where and when counts happened, as far as reports tell them apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Unix hour (Unix seconds / 3600).
    pub hour: u64,
    /// The offer.
    pub offer: OfferId,
    /// The affiliate.
    pub aff: AffiliateId,
    /// The value of each dimension, in [`Dimension::ALL`] order; empty when
    /// absent.
    pub values: [String; 7],
}

/// Counts not yet written, per origin, one slot per [`Counter`].
///
/// Counts of one origin are summed: a busy offer's clicks of one hour and
/// one set of subs are one entry, however many they are. Every click adds
/// to it, so it hashes with foldhash (randomly seeded, so values an
/// affiliate chooses cannot be made to collide) rather than SipHash.
#[derive(Clone, Debug, Default)]
pub struct Tally(HashMap<Origin, [i64; 10], foldhash::fast::RandomState>);

/// One increment of a report hash: which dimension's hash of which day,
/// the value (before the cap; empty without a dimension) and the field
/// without its value (`HH|offer|aff|code`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    /// `None`: the hours hash.
    pub dimension: Option<Dimension>,
    /// The value counted.
    pub value: String,
    /// `HH|offer|aff|code`.
    pub field: String,
}

impl Tally {
    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `n` to `counter` of `origin`.
    pub fn add(&mut self, origin: Origin, counter: Counter, n: i64) {
        if n != 0 {
            let slot = &mut self.0.entry(origin).or_insert([0; 10])[counter.index()];
            *slot = slot.saturating_add(n);
        }
    }

    /// Counts a tracked click (and its unique count, if it was unique).
    pub fn click(&mut self, click: &Click, unique: bool) {
        let [s1, s2, s3, s4, s5] = &click.subs;
        let origin = Origin {
            hour: click.created_at / 3600,
            offer: click.offer_id.clone(),
            aff: click.aff_id.clone(),
            values: [
                s1.clone(),
                s2.clone(),
                s3.clone(),
                s4.clone(),
                s5.clone(),
                click.source.clone(),
                String::new(),
            ],
        };
        let slots = self.0.entry(origin).or_insert([0; 10]);
        slots[Counter::Clicks.index()] += 1;
        if unique {
            slots[Counter::UniqueClicks.index()] += 1;
        }
    }

    /// Counts a click that was not tracked, at Unix second `at`.
    pub fn untracked(&mut self, offer: &OfferId, aff: &AffiliateId, at: u64, counter: Counter) {
        let origin = Origin {
            hour: at / 3600,
            offer: offer.clone(),
            aff: aff.clone(),
            values: Default::default(),
        };
        self.add(origin, counter, 1);
    }

    /// Moves a conversion created at Unix second `at` into (`sign` 1) or
    /// out of (`sign` -1) `status`, with the subs and source it kept and
    /// its goal: its identity's, or the one kept beside a txid (as the
    /// conversion list's `goal` filter reads it).
    /// Counts the conversion `command` just created as `record`: both
    /// stores call this on `created`, so they count it alike.
    pub fn created(
        &mut self,
        command: &crate::domain::conversion::ConversionCommand,
        record: &crate::domain::conversion::ConversionRecord,
    ) {
        self.conversion(
            command.now,
            &record.offer_id,
            &record.aff_id,
            &command.identity,
            &command.context,
            record.status,
            record.payout,
            record.revenue,
            1,
        );
    }

    #[expect(clippy::too_many_arguments, reason = "one conversion's facts")]
    pub fn conversion(
        &mut self,
        at: u64,
        offer: &OfferId,
        aff: &AffiliateId,
        identity: &Identity,
        context: &DeliveryContext,
        status: ConversionStatus,
        payout: Money,
        revenue: Money,
        sign: i64,
    ) {
        let goal = match identity {
            Identity::Goal(goal) => goal,
            Identity::Txid(_) => &context.goal,
        };
        let [s1, s2, s3, s4, s5] = &context.subs;
        let origin = Origin {
            hour: at / 3600,
            offer: offer.clone(),
            aff: aff.clone(),
            values: [
                s1.clone(),
                s2.clone(),
                s3.clone(),
                s4.clone(),
                s5.clone(),
                context.source.clone(),
                goal.clone(),
            ],
        };
        let moves: &[(Counter, i64)] = match status {
            ConversionStatus::Approved => &[
                (Counter::Conversions, 1),
                (Counter::Payout, payout.micros()),
                (Counter::Revenue, revenue.micros()),
            ],
            ConversionStatus::Pending => &[
                (Counter::Pending, 1),
                (Counter::PendingPayout, payout.micros()),
            ],
            ConversionStatus::Rejected => &[(Counter::Rejected, 1)],
        };
        let slots = self.0.entry(origin).or_insert([0; 10]);
        for &(counter, n) in moves {
            let slot = &mut slots[counter.index()];
            *slot = slot.saturating_add(sign.saturating_mul(n));
        }
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: Tally) {
        for (origin, slots) in other.0 {
            let mine = self.0.entry(origin).or_insert([0; 10]);
            for (m, n) in mine.iter_mut().zip(slots) {
                *m = m.saturating_add(n);
            }
        }
    }

    /// The increments of each UTC day's report hashes, summed per cell and
    /// in cell order (the order both stores apply them in). Sorted rather
    /// than hashed: a quiet server's batch is one click's 14 cells.
    pub fn cells(&self) -> BTreeMap<Day, Vec<(Cell, i64)>> {
        let mut days: BTreeMap<Day, Vec<(Cell, i64)>> = BTreeMap::new();
        for (origin, slots) in &self.0 {
            let day = Day::from_unix(origin.hour * 3600);
            let cells = days.entry(day).or_default();
            for counter in Counter::ALL {
                let n = slots[counter.index()];
                if n == 0 {
                    continue;
                }
                let field = hour_field(origin, counter);
                for dimension in Dimension::ALL {
                    if dimension.counts(counter) {
                        let cell = Cell {
                            dimension: Some(dimension),
                            value: origin.values[dimension.index()].clone(),
                            field: field.clone(),
                        };
                        cells.push((cell, n));
                    }
                }
                let cell = Cell {
                    dimension: None,
                    value: String::new(),
                    field,
                };
                cells.push((cell, n));
            }
        }
        for cells in days.values_mut() {
            cells.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            cells.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1 = kept.1.saturating_add(later.1);
                }
                same
            });
        }
        days
    }
}

/// `HH|offer|aff|code` of an origin's counter.
fn hour_field(origin: &Origin, counter: Counter) -> String {
    let hh = origin.hour % 24;
    format!(
        "{hh:02}|{}|{}|{}",
        origin.offer.as_str(),
        origin.aff.as_str(),
        counter.code()
    )
}

/// One counter of a report hash, read back: the UTC hour of its day, offer,
/// affiliate, counter and (in a dimension's hash) the value, `None` for
/// the "other" bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportField<'a> {
    /// 0-23, UTC.
    pub hour: u8,
    /// The offer id.
    pub offer: &'a str,
    /// The affiliate id.
    pub aff: &'a str,
    /// Which counter.
    pub counter: Counter,
    /// `None` in the hours hash; `Some(None)` for the "other" bucket.
    pub value: Option<Option<&'a str>>,
}

impl<'a> ReportField<'a> {
    /// Reads a field of a report hash; `None` for anything else (such a
    /// field is skipped, never summed into another).
    pub fn parse(field: &'a str, with_value: bool) -> Option<Self> {
        let mut parts = field.splitn(if with_value { 5 } else { 4 }, '|');
        let hour: u8 = parts.next()?.parse().ok().filter(|h| *h < 24)?;
        let offer = parts.next()?;
        let aff = parts.next()?;
        let counter = Counter::from_code(parts.next()?)?;
        let value = if with_value {
            let value = parts.next()?;
            Some((value != OTHER).then_some(value))
        } else {
            None
        };
        Some(Self {
            hour,
            offer,
            aff,
            counter,
            value,
        })
    }
}

/// The memory store's report hashes and admitted values: the rule of
/// `scripts/report.lua` in Rust.
#[derive(Debug, Default)]
pub struct Book {
    /// Per UTC day and dimension (`None`: hours), field → value.
    hashes: HashMap<(Day, Option<Dimension>), HashMap<String, i64>>,
    /// Per UTC day and dimension, the values admitted.
    admitted: HashMap<(Day, Dimension), HashSet<String>>,
}

impl Book {
    /// Applies a tally, admitting at most `cap` values per day and dimension.
    pub fn apply(&mut self, tally: &Tally, cap: usize) {
        for (day, cells) in tally.cells() {
            for (cell, n) in cells {
                let field = match cell.dimension {
                    None => cell.field,
                    Some(dimension) => {
                        let values = self.admitted.entry((day, dimension)).or_default();
                        let admitted = cell.value.is_empty()
                            || values.contains(&cell.value)
                            || (values.len() < cap && values.insert(cell.value.clone()));
                        let value = if admitted { &cell.value } else { OTHER };
                        format!("{}|{value}", cell.field)
                    }
                };
                let sum = self
                    .hashes
                    .entry((day, cell.dimension))
                    .or_default()
                    .entry(field)
                    .or_insert(0);
                *sum = sum.saturating_add(n);
            }
        }
    }

    /// The report hash of each of `days` for `dimension` (`None`: hours).
    pub fn read(&self, days: &[Day], dimension: Option<Dimension>) -> Vec<DayCounters> {
        days.iter()
            .map(|day| {
                self.hashes
                    .get(&(*day, dimension))
                    .map(|hash| {
                        hash.iter()
                            .map(|(field, n)| (field.clone(), i128::from(*n)))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClickId;

    fn click(sub1: &str, at: u64) -> Click {
        Click {
            id: ClickId::generate(),
            offer_id: OfferId::parse("o1").expect("valid"),
            aff_id: AffiliateId::parse("a1").expect("valid"),
            subs: [sub1.into(), "".into(), "".into(), "".into(), "".into()],
            source: "fb".into(),
            created_at: at,
            expires_at: at + 86_400,
            visitor: "v".into(),
            ad_ids: Default::default(),
        }
    }

    #[test]
    fn clicks_of_one_hour_and_one_set_of_values_are_one_entry() {
        let mut tally = Tally::default();
        for _ in 0..3 {
            tally.click(&click("x", 1_795_305_600 + 60), true);
        }
        assert_eq!(tally.0.len(), 1);
        let mut second = Tally::default();
        second.click(&click("x", 1_795_305_600 + 120), false);
        tally.merge(second);
        let cells = tally.cells();
        let day = &cells[&Day::from_unix(1_795_305_600)];
        let clicks = Cell {
            dimension: Some(Dimension::Sub1),
            value: "x".into(),
            field: "00|o1|a1|clk".into(),
        };
        assert_eq!(
            day.iter().find(|(c, _)| *c == clicks).map(|(_, n)| *n),
            Some(4)
        );
        assert!(day.windows(2).all(|w| w[0].0 < w[1].0), "sorted, summed");
        // Goals count conversions only.
        assert!(day
            .iter()
            .all(|(c, _)| c.dimension != Some(Dimension::Goal)));
    }

    #[test]
    fn past_the_cap_new_values_are_other_and_admitted_ones_stay_themselves() {
        let mut book = Book::default();
        let at = 1_795_305_600;
        let mut first = Tally::default();
        first.click(&click("a", at), false);
        first.click(&click("b", at), false);
        book.apply(&first, 2);
        let mut later = Tally::default();
        later.click(&click("c", at + 3600), false);
        later.click(&click("a", at + 3600), false);
        later.click(&click("", at + 3600), false);
        book.apply(&later, 2);
        let read = book.read(&[Day::from_unix(at)], Some(Dimension::Sub1));
        let mut fields: Vec<(&str, i128)> = read[0].iter().map(|(f, n)| (f.as_str(), *n)).collect();
        fields.sort();
        assert_eq!(
            fields,
            vec![
                ("00|o1|a1|clk|a", 1),
                ("00|o1|a1|clk|b", 1),
                ("01|o1|a1|clk|", 1),
                ("01|o1|a1|clk|\0", 1),
                ("01|o1|a1|clk|a", 1),
            ]
        );
    }

    #[test]
    fn fields_read_back_with_values_holding_separators() {
        let field = ReportField::parse("07|o1|a1|cv|x|y", true).expect("parses");
        assert_eq!((field.hour, field.offer, field.aff), (7, "o1", "a1"));
        assert_eq!(field.value, Some(Some("x|y")));
        assert_eq!(
            ReportField::parse("07|o1|a1|cv|\0", true).map(|f| f.value),
            Some(Some(None))
        );
        assert_eq!(ReportField::parse("24|o1|a1|cv", false), None);
        assert_eq!(ReportField::parse("07|o1|a1|zz", false), None);
    }
}
