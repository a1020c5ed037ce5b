//! The per-day counters that reports are summed from.
//!
//! Each counter is moved when a click or a conversion happens and is kept per
//! offer, affiliate and UTC day (the store decides how: Redis keeps one hash
//! per shard and day whose fields are `offer|aff|<code>`). The credit script
//! (`store/scripts/credit.lua`) spells the conversion counters with the same
//! codes.

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
    }
}
