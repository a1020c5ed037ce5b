//! Reports: counters summed by offer, affiliate, day, hour, status, a
//! sub-ID, the source or the goal, in UTC or the operator's time zone.
//!
//! Two sets of counters answer them (docs/architecture.md, "Report
//! counters"):
//!
//! - Reports by offer, affiliate, UTC day and status read the exact per-day
//!   counters: per day the 64 shard hashes (`days × 64` small hashes in one
//!   pipeline). The cost depends on the range, never on the number of
//!   clicks: a year of stats is ~23,000 `HGETALL`s, a week ~450.
//! - Reports by hour, in a time zone other than UTC, or by a
//!   [`Dimension`] read the report counters (`crate::store::report`): one
//!   hash per UTC day (of the hours, or of the dimension), written a moment
//!   after the click or conversion. A local day is summed from the UTC
//!   hours that start in it, so the range read is one UTC day wider on
//!   each side.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::tz::TimeZone;

use crate::domain::counter::{Counter, Dimension};
use crate::domain::money::MoneyTotal;
use crate::domain::query::Params;
use crate::domain::{AffiliateId, ConversionStatus, Day, DomainError, Offer, OfferId};
use crate::store::report::ReportField;
use crate::store::{DayCounters, Store, StoreError};

/// Longest date range one query may cover, in days.
pub const MAX_RANGE_DAYS: i64 = 366;

/// Longest `tz` accepted: IANA names are far shorter.
const MAX_TZ_LEN: usize = 64;

/// The time zone of a report's days and hours.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The IANA name as asked (`UTC` by default).
    pub name: String,
    /// The zone's rules.
    tz: TimeZone,
}

impl Zone {
    /// UTC, the zone of every stored counter.
    pub fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// An IANA time zone by name (`Europe/Berlin`); anything else is refused.
    pub fn parse(name: &str) -> Result<Self, DomainError> {
        let unknown = || {
            DomainError::invalid(
                "must be an IANA time zone name such as Europe/Berlin or America/New_York",
            )
        };
        let plausible = !name.is_empty()
            && name.len() <= MAX_TZ_LEN
            && !name.contains("..")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
        if !plausible {
            return Err(unknown());
        }
        let tz = TimeZone::get(name).map_err(|_| unknown())?;
        Ok(Self {
            name: name.to_owned(),
            tz,
        })
    }

    /// Whether this is UTC (whatever it was called): the stored days then
    /// are the report's days.
    pub fn is_utc(&self) -> bool {
        self.name.eq_ignore_ascii_case("UTC") || self.tz == TimeZone::UTC
    }

    /// The zone's offset from UTC at Unix second `secs`, in seconds.
    fn offset_at(&self, secs: i64) -> i64 {
        jiff::Timestamp::from_second(secs)
            .map(|t| i64::from(self.tz.to_offset(t).seconds()))
            .unwrap_or(0)
    }

    /// The local day and hour of the UTC hour starting at Unix second
    /// `secs`. In zones whose offset is not whole hours (India's +5:30,
    /// Nepal's +5:45) a UTC hour is counted in the local hour its start
    /// falls in: 18:00 UTC (23:30 in India) in the local 23:00 hour.
    fn local(&self, secs: i64) -> (Day, u8) {
        let local = secs + self.offset_at(secs);
        let day = Day::from_unix(u64::try_from(local.max(0)).unwrap_or(0));
        let hour = (local.rem_euclid(86_400) / 3600) as u8;
        (day, hour)
    }

    /// Today in this zone at Unix second `now`.
    pub fn today(&self, now: u64) -> Day {
        let secs = i64::try_from(now).unwrap_or(i64::MAX);
        self.local(secs).0
    }
}

/// A parsed `GET /api/v1/stats` query.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    /// One row per offer.
    pub by_offer: bool,
    /// One row per affiliate.
    pub by_affiliate: bool,
    /// One row per day (of [`StatsQuery::tz`]).
    pub by_day: bool,
    /// One row per hour of the day (0-23, of [`StatsQuery::tz`]).
    pub by_hour: bool,
    /// One row per conversion status (click counters in a row of their own).
    pub by_status: bool,
    /// One row per value of this dimension (at most one per query: each
    /// dimension's values are counted apart).
    pub dimension: Option<Dimension>,
    /// The zone of days and hours.
    pub tz: Zone,
    /// First day, inclusive.
    pub from: Day,
    /// Last day, inclusive.
    pub to: Day,
    /// Only this offer.
    pub offer_id: Option<OfferId>,
    /// Only this affiliate.
    pub aff_id: Option<AffiliateId>,
    /// Only these offers (an advertiser's own, for its scoped key); not a
    /// query parameter.
    pub offers: Option<BTreeSet<OfferId>>,
}

impl StatsQuery {
    /// Reads `group_by`, `tz`, `from`, `to`, `offer_id`, `aff_id`; `from`
    /// and `to` default to today (in `tz`, at Unix second `now`), and
    /// `from` to `to` when only `to` is given.
    pub fn from_params(params: &Params, now: u64) -> Result<Self, DomainError> {
        let tz = match params.get_nonempty(&["tz"])? {
            Some(name) => Zone::parse(name).map_err(|e| e.in_field("tz"))?,
            None => Zone::utc(),
        };
        let today = tz.today(now);
        let mut query = StatsQuery {
            by_offer: false,
            by_affiliate: false,
            by_day: false,
            by_hour: false,
            by_status: false,
            dimension: None,
            tz,
            from: today,
            to: today,
            offer_id: None,
            aff_id: None,
            offers: None,
        };
        if let Some(groups) = params.get_nonempty(&["group_by"])? {
            for group in groups.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                match group {
                    "offer" => query.by_offer = true,
                    "affiliate" | "aff" => query.by_affiliate = true,
                    "day" => query.by_day = true,
                    "hour" => query.by_hour = true,
                    "status" => query.by_status = true,
                    other => match Dimension::parse(other) {
                        Some(d) if query.dimension.is_none_or(|before| before == d) => {
                            query.dimension = Some(d)
                        }
                        Some(_) => {
                            return Err(DomainError::invalid(
                                "group_by: at most one of sub1, sub2, sub3, sub4, sub5, source, goal (each is counted apart)",
                            ))
                        }
                        None => {
                            return Err(DomainError::invalid(format!(
                                "group_by: {other:?} is not one of offer, affiliate, day, hour, status, sub1, sub2, sub3, sub4, sub5, source, goal"
                            )))
                        }
                    },
                }
            }
        }
        let to = params
            .get_nonempty(&["to"])?
            .map(Day::parse)
            .transpose()
            .map_err(|e| e.in_field("to"))?;
        let from = params
            .get_nonempty(&["from"])?
            .map(Day::parse)
            .transpose()
            .map_err(|e| e.in_field("from"))?;
        query.to = to.unwrap_or(today);
        query.from = from.unwrap_or(query.to);
        if query.from > query.to {
            return Err(DomainError::invalid("from is after to"));
        }
        if query.to.index() - query.from.index() >= MAX_RANGE_DAYS {
            return Err(DomainError::invalid(format!(
                "the range covers more than {MAX_RANGE_DAYS} days"
            )));
        }
        query.offer_id = params
            .get_nonempty(&["offer_id"])?
            .map(OfferId::parse)
            .transpose()?;
        query.aff_id = params
            .get_nonempty(&["aff_id"])?
            .map(AffiliateId::parse)
            .transpose()?;
        Ok(query)
    }

    /// Whether the query needs the report counters (hours, a zone other
    /// than UTC, a dimension) rather than the exact per-day ones.
    pub fn by_hours(&self) -> bool {
        self.by_hour || self.dimension.is_some() || !self.tz.is_utc()
    }

    /// Every day in the range, in order.
    pub fn days(&self) -> Vec<Day> {
        let mut days = Vec::new();
        let mut day = self.from;
        while day <= self.to {
            days.push(day);
            day = day.succ();
        }
        days
    }

    /// The UTC days whose counters the report reads: its days, and one more
    /// on each side when reading hours (a local day spans parts of up to
    /// three UTC days).
    pub fn stored_days(&self) -> Vec<Day> {
        if !self.by_hours() {
            return self.days();
        }
        let mut days = Vec::new();
        let mut day = self.from.minus(1);
        while day <= self.to.succ() {
            days.push(day);
            day = day.succ();
        }
        days
    }

    /// Whether any grouping was asked for.
    fn grouped(&self) -> bool {
        self.by_day
            || self.by_offer
            || self.by_affiliate
            || self.by_hour
            || self.by_status
            || self.dimension.is_some()
    }
}

/// A row's value of the grouped [`Dimension`]: `value` `None` is the bucket
/// of values past the day's cap ("other").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionValue {
    /// Which dimension.
    pub dimension: Dimension,
    /// The value (empty: clicks and conversions without one); `None`: other.
    pub value: Option<String>,
}

impl serde::Serialize for DimensionValue {
    /// `"sub1":"camp 7"`, or `"sub1":null,"other":true` for the bucket past the cap.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(self.dimension.name(), &self.value)?;
        if self.value.is_none() {
            map.serialize_entry("other", &true)?;
        }
        map.end()
    }
}

/// One row of the report. Grouping keys appear only when grouped by; money
/// of one row is always in one currency (`currency`), so rows are split by
/// currency even when not grouped by offer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StatsRow {
    /// The offer, when grouped by offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<String>,
    /// The affiliate, when grouped by affiliate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aff_id: Option<String>,
    /// The day (of the query's time zone), when grouped by day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<Day>,
    /// The hour of the day, 0-23 (of the query's time zone), when grouped by hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<u8>,
    /// When grouped by status: the conversion status whose counters the
    /// row holds; `null` on the row of the click counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Option<ConversionStatus>>,
    /// The value of the grouped dimension.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub value: Option<DimensionValue>,
    /// The currency of every amount in the row: its offers' currency. Absent
    /// only on the all-zero row of a report without any activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Tracked clicks.
    pub clicks: i128,
    /// Approved conversions.
    pub conversions: i128,
    /// Payout of approved conversions.
    #[schema(required = false)]
    pub payout: MoneyTotal,
    /// Revenue of approved conversions.
    #[schema(required = false)]
    pub revenue: MoneyTotal,
    /// Pending conversions.
    pub pending_conversions: i128,
    /// Payout the pending conversions would earn.
    #[schema(required = false)]
    pub pending_payout: MoneyTotal,
    /// Rejected conversions.
    pub rejected_conversions: i128,
    /// Clicks of visitors who declined tracking (counted, nothing stored).
    pub declined_clicks: i128,
    /// Tracked clicks that were the visitor's first on this offer and
    /// affiliate within the duplicate-click window.
    pub unique_clicks: i128,
    /// Clicks sent to the fallback URL because a cap was full.
    pub capped_clicks: i128,
}

impl StatsRow {
    /// Adds one counter. Sums are `i128`: counters of every shard and day
    /// added together can pass `i64::MAX`, and a report must never wrap.
    fn add(&mut self, counter: Counter, value: i128) {
        match counter {
            Counter::Clicks => self.clicks += value,
            Counter::Declined => self.declined_clicks += value,
            Counter::UniqueClicks => self.unique_clicks += value,
            Counter::Capped => self.capped_clicks += value,
            Counter::Conversions => self.conversions += value,
            Counter::Payout => self.payout.add_micros(value),
            Counter::Revenue => self.revenue.add_micros(value),
            Counter::Pending => self.pending_conversions += value,
            Counter::PendingPayout => self.pending_payout.add_micros(value),
            Counter::Rejected => self.rejected_conversions += value,
        }
    }

    fn is_empty(&self) -> bool {
        let zero = StatsRow {
            offer_id: self.offer_id.clone(),
            aff_id: self.aff_id.clone(),
            day: self.day,
            hour: self.hour,
            status: self.status,
            value: self.value.clone(),
            currency: self.currency.clone(),
            ..StatsRow::default()
        };
        *self == zero
    }
}

/// Orders statuses in rows: the click counters' row first.
fn status_rank(status: Option<ConversionStatus>) -> u8 {
    match status {
        None => 0,
        Some(ConversionStatus::Approved) => 1,
        Some(ConversionStatus::Pending) => 2,
        Some(ConversionStatus::Rejected) => 3,
    }
}

/// A row's grouping key, in row order: day, hour, offer, affiliate, status,
/// the dimension's value (the "other" bucket last), currency.
type RowKey = (
    Option<Day>,
    Option<u8>,
    Option<String>,
    Option<String>,
    Option<u8>,
    Option<(bool, String)>,
    Option<String>,
);

/// One stored counter, read back.
struct Count<'a> {
    day: Day,
    hour: Option<u8>,
    offer: &'a str,
    aff: &'a str,
    counter: Counter,
    /// `Some(None)`: the "other" bucket.
    value: Option<Option<&'a str>>,
}

/// Sums raw counters into report rows, sorted by day, hour, offer,
/// affiliate, status, value and currency. `days` are the UTC days of
/// `counters` ([`StatsQuery::stored_days`]); fields are those of the
/// per-day counters, or of the report counters when
/// [`StatsQuery::by_hours`]. `currency_of` names an offer's currency;
/// counters of an offer it does not know are reported under no currency
/// rather than added to another currency's money.
///
/// Without any grouping there is one row per currency (one all-zero row when
/// nothing happened); with grouping, only rows with some activity appear.
pub fn summarise(
    query: &StatsQuery,
    days: &[Day],
    counters: &[DayCounters],
    currency_of: impl Fn(&str) -> Option<String>,
) -> Vec<StatsRow> {
    let by_hours = query.by_hours();
    let with_value = query.dimension.is_some();
    let mut rows: BTreeMap<RowKey, StatsRow> = BTreeMap::new();
    let mut local_hours: HashMap<i64, (Day, u8)> = HashMap::new();
    for (day, fields) in days.iter().zip(counters) {
        for (field, value) in fields {
            let count = if by_hours {
                let Some(f) = ReportField::parse(field, with_value) else {
                    continue;
                };
                let start = day.index() * 86_400 + i64::from(f.hour) * 3600;
                let (local_day, local_hour) = *local_hours
                    .entry(start)
                    .or_insert_with(|| query.tz.local(start));
                Count {
                    day: local_day,
                    hour: Some(local_hour),
                    offer: f.offer,
                    aff: f.aff,
                    counter: f.counter,
                    value: f.value,
                }
            } else {
                let mut parts = field.splitn(3, '|');
                let (Some(offer), Some(aff), Some(counter)) = (
                    parts.next(),
                    parts.next(),
                    parts.next().and_then(Counter::from_code),
                ) else {
                    continue;
                };
                Count {
                    day: *day,
                    hour: None,
                    offer,
                    aff,
                    counter,
                    value: None,
                }
            };
            if count.day < query.from
                || count.day > query.to
                || query
                    .offer_id
                    .as_ref()
                    .is_some_and(|o| o.as_str() != count.offer)
                || query
                    .aff_id
                    .as_ref()
                    .is_some_and(|a| a.as_str() != count.aff)
                || query
                    .offers
                    .as_ref()
                    .is_some_and(|o| !o.contains(count.offer))
            {
                continue;
            }
            let status = count.counter.status();
            let dimension_value = query.dimension.and_then(|dimension| {
                count.value.map(|value| DimensionValue {
                    dimension,
                    value: value.map(str::to_owned),
                })
            });
            let key: RowKey = (
                query.by_day.then_some(count.day),
                query.by_hour.then_some(count.hour).flatten(),
                query.by_offer.then(|| count.offer.to_owned()),
                query.by_affiliate.then(|| count.aff.to_owned()),
                query.by_status.then(|| status_rank(status)),
                dimension_value.as_ref().map(|v| match &v.value {
                    Some(value) => (false, value.clone()),
                    None => (true, String::new()),
                }),
                currency_of(count.offer),
            );
            rows.entry(key.clone())
                .or_insert_with(|| StatsRow {
                    day: key.0,
                    hour: key.1,
                    offer_id: key.2,
                    aff_id: key.3,
                    status: query.by_status.then_some(status),
                    value: dimension_value,
                    currency: key.6,
                    ..StatsRow::default()
                })
                .add(count.counter, *value);
        }
    }
    let mut rows: Vec<StatsRow> = rows.into_values().filter(|r| !r.is_empty()).collect();
    if rows.is_empty() && !query.grouped() {
        rows.push(StatsRow::default());
    }
    rows
}

/// Runs a stats query against the store; `offers` gives each offer's currency.
pub async fn report(
    store: &dyn Store,
    offers: &HashMap<OfferId, Arc<Offer>>,
    query: &StatsQuery,
) -> Result<Vec<StatsRow>, StoreError> {
    let days = query.stored_days();
    let counters = if query.by_hours() {
        store.read_report_counters(&days, query.dimension).await?
    } else {
        store.read_counters(&days).await?
    };
    Ok(summarise(query, &days, &counters, |offer| {
        offers.get(offer).map(|o| o.currency.as_str().to_owned())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(_: &str) -> Option<String> {
        Some("EUR".into())
    }

    fn query(raw: &str) -> Result<StatsQuery, DomainError> {
        let noon = Day::parse("2026-11-23")?.index() * 86_400 + 12 * 3600;
        StatsQuery::from_params(
            &Params::parse(raw.as_bytes())?,
            u64::try_from(noon).expect("after 1970"),
        )
    }

    #[test]
    fn dates_default_to_today_and_ranges_are_checked() {
        let q = query("").expect("valid");
        assert_eq!(
            (q.from.to_string(), q.to.to_string()),
            ("2026-11-23".into(), "2026-11-23".into())
        );
        assert!(query("from=2026-11-24&to=2026-11-23").is_err());
        assert!(query("from=2025-01-01&to=2026-11-23").is_err());
        assert!(query("group_by=country").is_err());
        assert!(query("from=2026-02-30").is_err());
        assert_eq!(
            query("from=2026-11-01&to=2026-11-03").map(|q| q.days().len()),
            Ok(3)
        );
    }

    #[test]
    fn summing_groups_and_filters() {
        let q = query("group_by=offer&from=2026-11-22&to=2026-11-23").expect("valid");
        let days = q.days();
        let day1: DayCounters = [
            ("o1|a1|clk", 3),
            ("o1|a2|clk", 2),
            ("o2|a1|clk", 1),
            ("o1|a1|py", 2_500_000),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let day2: DayCounters = [("o1|a1|clk", 4), ("o1|a1|cv", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let rows = summarise(&q, &days, &[day1.clone(), day2.clone()], eur);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].offer_id.as_deref(),
                rows[0].clicks,
                rows[0].conversions
            ),
            (Some("o1"), 9, 1)
        );
        assert_eq!(rows[0].payout.to_string(), "2.5");
        assert_eq!(
            (rows[1].offer_id.as_deref(), rows[1].clicks),
            (Some("o2"), 1)
        );

        let filtered = query("aff_id=a2&from=2026-11-22&to=2026-11-23").expect("valid");
        let rows = summarise(&filtered, &days, &[day1, day2], eur);
        assert_eq!(
            rows,
            vec![StatsRow {
                clicks: 2,
                currency: Some("EUR".into()),
                ..StatsRow::default()
            }]
        );
    }

    #[test]
    fn new_groupings_and_zones_are_read_and_bad_ones_refused() {
        let q = query("group_by=hour,status,sub3&tz=Europe/Berlin").expect("valid");
        assert!(q.by_hour && q.by_status && q.by_hours());
        assert_eq!(q.dimension, Some(Dimension::Sub3));
        assert_eq!(q.stored_days().len(), 3);
        assert!(!query("tz=UTC").expect("valid").by_hours());
        assert!(query("group_by=sub1,sub2").is_err());
        assert!(query("group_by=sub1,sub1").is_ok());
        for bad in ["Mars/Olympus", "../../etc/passwd", "Europe/Berlin\n", ""] {
            if !bad.is_empty() {
                assert!(query(&format!("tz={bad}")).is_err(), "{bad:?} accepted");
            }
        }
    }

    #[test]
    fn a_utc_hour_lands_on_the_local_day_and_hour_it_starts_in() {
        let berlin = Zone::parse("Europe/Berlin").expect("known");
        let day = Day::parse("2026-11-22").expect("valid");
        let at_23_utc = day.index() * 86_400 + 23 * 3600;
        assert_eq!(berlin.local(at_23_utc), (day.succ(), 0));
        let kolkata = Zone::parse("Asia/Kolkata").expect("known");
        // 18:00 UTC is 23:30 in India: counted in the local 23:00 hour.
        assert_eq!(kolkata.local(day.index() * 86_400 + 18 * 3600), (day, 23));
        let new_york = Zone::parse("America/New_York").expect("known");
        assert_eq!(
            new_york.local(day.index() * 86_400 + 3 * 3600),
            (day.minus(1), 22)
        );
    }

    #[test]
    fn hours_are_summed_into_local_days_with_status_rows() {
        // Report counters of UTC 2026-11-22: in November Berlin is UTC+1,
        // so 22:00 UTC is still the 22nd there and 23:00 UTC the 23rd.
        let q = query("group_by=day,status&tz=Europe/Berlin&from=2026-11-22&to=2026-11-23")
            .expect("valid");
        let days = q.stored_days();
        let mut counters = vec![DayCounters::new(); days.len()];
        let at = |day: &str| {
            days.iter()
                .position(|d| d.to_string() == day)
                .expect("read")
        };
        counters[at("2026-11-22")] = [
            ("10|o1|a1|clk", 1),
            ("22|o1|a1|clk", 1),
            ("23|o1|a1|clk", 3),
            ("23|o1|a1|cv", 1),
            ("23|o1|a1|pd", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let rows = summarise(&q, &days, &counters, eur);
        type Shown = (String, Option<Option<ConversionStatus>>, i128, i128, i128);
        let shown: Vec<Shown> = rows
            .iter()
            .map(|r| {
                (
                    r.day.map(|d| d.to_string()).unwrap_or_default(),
                    r.status,
                    r.clicks,
                    r.conversions,
                    r.pending_conversions,
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("2026-11-22".into(), Some(None), 2, 0, 0),
                ("2026-11-23".into(), Some(None), 3, 0, 0),
                (
                    "2026-11-23".into(),
                    Some(Some(ConversionStatus::Approved)),
                    0,
                    1,
                    0
                ),
                (
                    "2026-11-23".into(),
                    Some(Some(ConversionStatus::Pending)),
                    0,
                    0,
                    1
                ),
            ]
        );
    }

    #[test]
    fn ungrouped_report_without_data_is_one_zero_row() {
        let q = query("").expect("valid");
        assert_eq!(
            summarise(&q, &q.days(), &[DayCounters::new()], eur),
            vec![StatsRow::default()]
        );
    }

    #[test]
    fn money_of_two_currencies_is_never_one_sum() {
        let q = query("").expect("valid");
        let day: DayCounters = [
            ("eur-offer|a1|py", 2_500_000),
            ("usd-offer|a1|py", 2_500_000),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let rows = summarise(&q, &q.days(), &[day], |offer| {
            Some(
                if offer.starts_with("eur") {
                    "EUR"
                } else {
                    "USD"
                }
                .to_owned(),
            )
        });
        let shown: Vec<(Option<&str>, String)> = rows
            .iter()
            .map(|r| (r.currency.as_deref(), r.payout.to_string()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (Some("EUR"), "2.5".to_owned()),
                (Some("USD"), "2.5".to_owned())
            ]
        );
    }

    #[test]
    fn sums_past_i64_are_exact_never_wrapped() {
        let q = query("from=2026-11-22&to=2026-11-23").expect("valid");
        let near_limit: DayCounters = [("o1|a1|rv", i128::from(i64::MAX - 1))]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let rows = summarise(&q, &q.days(), &[near_limit.clone(), near_limit], eur);
        assert_eq!(rows[0].revenue.to_string(), "18446744073709.551612");
    }
}
