//! The per-day counters that reports are summed from.
//!
//! Each counter is moved when a click or a conversion happens and is kept per
//! offer, affiliate and UTC day (the store decides how: Redis keeps one hash
//! per shard and day whose fields are `offer|aff|<code>`). The credit script
//! (`store/scripts/credit.lua`) spells the conversion counters with the same
//! codes.
//!
//! Reports by hour, time zone and [`Dimension`] are summed from a second set
//! of counters, per UTC hour (`crate::store::report`).

use super::ConversionStatus;

/// One counter of an offer and affiliate for one day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Tracked clicks.
    Clicks,
    /// Tracked clicks that were the visitor's first within the duplicate window.
    UniqueClicks,
    /// Clicks sent to the fallback URL because a cap was full.
    Capped,
    /// Clicks of visitors who declined tracking (nothing else about them is stored).
    Declined,
    /// Approved conversions.
    Conversions,
    /// Payout of approved conversions, micro-units.
    Payout,
    /// Revenue of approved conversions, micro-units.
    Revenue,
    /// Pending conversions.
    Pending,
    /// Payout of pending conversions, micro-units.
    PendingPayout,
    /// Rejected conversions.
    Rejected,
}

impl Counter {
    /// Every counter.
    pub const ALL: [Counter; 10] = [
        Self::Clicks,
        Self::UniqueClicks,
        Self::Capped,
        Self::Declined,
        Self::Conversions,
        Self::Payout,
        Self::Revenue,
        Self::Pending,
        Self::PendingPayout,
        Self::Rejected,
    ];

    /// The short code stored data uses. Existing data is stored under these
    /// codes: changing one strands it.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Clicks => "clk",
            Self::UniqueClicks => "uclk",
            Self::Capped => "cap",
            Self::Declined => "nc",
            Self::Conversions => "cv",
            Self::Payout => "py",
            Self::Revenue => "rv",
            Self::Pending => "pd",
            Self::PendingPayout => "pp",
            Self::Rejected => "rj",
        }
    }

    /// Inverse of [`Counter::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The counter's place in [`Counter::ALL`], so that a set of counters
    /// can be an array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The conversion status this counter belongs to; `None` for click
    /// counters, which belong to no status.
    pub fn status(self) -> Option<ConversionStatus> {
        match self {
            Self::Conversions | Self::Payout | Self::Revenue => Some(ConversionStatus::Approved),
            Self::Pending | Self::PendingPayout => Some(ConversionStatus::Pending),
            Self::Rejected => Some(ConversionStatus::Rejected),
            Self::Clicks | Self::UniqueClicks | Self::Capped | Self::Declined => None,
        }
    }
}

/// A value of a click or conversion that reports can group by, beside
/// offer, affiliate and time: the affiliate's sub-IDs, the traffic source,
/// the conversion's goal.
///
/// Values are many (an affiliate may send a new `sub1` with every click),
/// so the store keeps at most a fixed number of distinct values of each
/// dimension per UTC day; later values of a full day are counted together
/// as the "other" bucket (docs/architecture.md, "Report counters").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// The click's `sub1`.
    Sub1,
    /// The click's `sub2`.
    Sub2,
    /// The click's `sub3`.
    Sub3,
    /// The click's `sub4`.
    Sub4,
    /// The click's `sub5`.
    Sub5,
    /// The click's `source`.
    Source,
    /// The conversion's goal (conversions only: a click has none).
    Goal,
}

impl Dimension {
    /// Every dimension, in the order of [`Dimension::index`].
    pub const ALL: [Dimension; 7] = [
        Self::Sub1,
        Self::Sub2,
        Self::Sub3,
        Self::Sub4,
        Self::Sub5,
        Self::Source,
        Self::Goal,
    ];

    /// The name in `group_by`, in report rows and in Redis keys. Existing
    /// data is stored under these names.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sub1 => "sub1",
            Self::Sub2 => "sub2",
            Self::Sub3 => "sub3",
            Self::Sub4 => "sub4",
            Self::Sub5 => "sub5",
            Self::Source => "source",
            Self::Goal => "goal",
        }
    }

    /// Inverse of [`Dimension::name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The dimension's place in [`Dimension::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether `counter` is counted by this dimension's values. Declined
    /// and capped clicks are counted by hour only (nothing of them is kept,
    /// their subs neither); a goal belongs to conversions only.
    pub fn counts(self, counter: Counter) -> bool {
        match counter {
            Counter::Declined | Counter::Capped => false,
            Counter::Clicks | Counter::UniqueClicks => self != Self::Goal,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_its_counter() {
        for counter in Counter::ALL {
            assert_eq!(Counter::from_code(counter.code()), Some(counter));
        }
        assert_eq!(Counter::from_code("nope"), None);
        for (i, counter) in Counter::ALL.into_iter().enumerate() {
            assert_eq!(counter.index(), i);
        }
    }

    #[test]
    fn every_dimension_reads_back_from_its_name() {
        for (i, dimension) in Dimension::ALL.into_iter().enumerate() {
            assert_eq!(Dimension::parse(dimension.name()), Some(dimension));
            assert_eq!(dimension.index(), i);
        }
        assert_eq!(Dimension::parse("sub6"), None);
    }
}
