//! The postback troubleshooting log: what came in and what clickback made
//! of it, per offer, for `GET /api/v1/postbacks`.
//!
//! Each offer has two bounded lists: accepted postbacks (answered 200) and
//! refused ones (a wrong token, a forbidden IP, a bad signature, an unknown
//! click, unreadable input). Refusals never push accepted entries out, so
//! that whoever holds a click id cannot flush an offer's record of real
//! conversions with wrong-token postbacks; and every log expires a while
//! after its last entry ([`LOG_TTL_SECS`]).
//!
//! Entries are filed in the background, many per round trip: writing each
//! on its own (`LPUSH` + `LTRIM`) would be a third Redis round trip per
//! postback. The writer (owned by [`crate::background`]) takes whatever
//! queued up while its previous write was in flight and files it as one
//! pipeline: one entry at a time on a quiet server, hundreds at once on a
//! busy one.
//!
//! The log is a debugging aid, not a ledger: an entry is lost if Redis is
//! down when it is written or the queue is full. Conversions and their
//! counters never go this way.

use std::net::IpAddr;

use super::outcome::{PostbackAnswer, PostbackError, PostbackWarning};
use super::request::PostbackRequest;
use crate::batch::BatchQueue;
use crate::domain::{ConversionStatus, Identity, Money, OfferId};
use crate::store::{LogRetention, PostbackLogKind, PostbackLogLine, Store, StoreError};

/// A log nobody has written to for 30 days disappears.
pub const LOG_TTL_SECS: u64 = 30 * 86_400;

/// Entries waiting to be written, at most; more are dropped (and logged at
/// debug level) rather than held while Redis is unreachable.
const QUEUE_CAPACITY: usize = 16_384;

/// One line of an offer's postback log (`GET /api/v1/postbacks`): what came
/// in and what clickback made of it. Never the token or the signature.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PostbackLogEntry {
    /// Unix seconds when it was answered.
    pub at: u64,
    /// This instance's count of logged postbacks when it was answered:
    /// orders entries of one second, and merges the accepted and refused
    /// lists back into one timeline.
    pub seq: u64,
    /// The sender's IP (the advertiser's server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    /// The click id, when the postback could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click_id: Option<String>,
    /// The transaction id, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
    /// The goal, when no txid was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// The status the advertiser reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_status: Option<ConversionStatus>,
    /// The amount reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// HTTP status answered.
    pub http_status: u16,
    /// `credited`, `duplicate`, `updated`, `rejected`, or the error reason
    /// (`unknown_click`, `invalid_token`, `ip_not_allowed`, …).
    pub outcome: String,
    /// Why, for rejections and errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The human explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The conversion concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_id: Option<String>,
    /// Its payout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payout: Option<Money>,
    /// Names of the parameters clickback did not read (never their values):
    /// nothing is ignored silently.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_params: Vec<String>,
    /// Why the operator should look at a postback answered as usual
    /// (`ignored_event_param`); `detail` explains it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<WarningName>)]
    pub warning: Option<&'static str>,
}

impl PostbackLogEntry {
    /// Describes one answered postback at Unix time `at`.
    pub fn new(
        request: Option<&PostbackRequest>,
        remote_ip: Option<IpAddr>,
        outcome: &Result<PostbackAnswer, PostbackError>,
        at: u64,
    ) -> Self {
        let (txid, goal) = match request.map(|r| &r.identity) {
            Some(Identity::Txid(t)) => (Some(t.clone()), None),
            Some(Identity::Goal(g)) => (None, Some(g.clone())),
            None => (None, None),
        };
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut entry = Self {
            at,
            seq: SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            remote_ip: remote_ip.map(|ip| ip.to_string()),
            click_id: request.map(|r| r.click_id.as_str().to_owned()),
            txid,
            goal,
            requested_status: request.map(|r| r.status),
            amount: request.and_then(|r| r.amount),
            http_status: 200,
            outcome: String::new(),
            reason: None,
            detail: None,
            conversion_id: None,
            payout: None,
            ignored_params: request.map(|r| r.ignored.clone()).unwrap_or_default(),
            warning: None,
        };
        match outcome {
            Ok(answer) => {
                entry.outcome = answer.status.to_owned();
                entry.reason = answer.reason.map(str::to_owned);
                entry.detail = answer.detail.map(str::to_owned);
                entry.conversion_id = Some(answer.conversion_id.clone());
                entry.payout = Some(answer.payout);
            }
            Err(error) => {
                let mapping = error.mapping();
                entry.http_status = mapping.status.as_u16();
                entry.outcome = mapping.reason.to_owned();
                entry.reason = Some(mapping.reason.to_owned());
                entry.detail = Some(error.detail());
            }
        }
        entry
    }

    /// Adds the names of parameters read by no rule before the request
    /// was (members of a JSON body that are neither strings nor numbers).
    pub fn also_ignored(&mut self, names: &[String]) {
        for name in names {
            if !self.ignored_params.contains(name) {
                self.ignored_params.push(name.clone());
            }
        }
    }

    /// Marks the entry with a warning, explained in `detail`.
    pub fn warn(&mut self, warning: PostbackWarning) {
        self.warning = Some(warning.as_str());
        self.detail = Some(warning.detail().to_owned());
    }

    /// Which of the offer's logs this entry belongs in.
    pub fn kind(&self) -> PostbackLogKind {
        if self.http_status == 200 {
            PostbackLogKind::Accepted
        } else {
            PostbackLogKind::Refused
        }
    }
}

/// Queues postback log entries for the background writer.
pub struct PostbackLog {
    /// Entries of each log kept, newest first.
    keep: usize,
    queue: BatchQueue<Vec<PostbackLogLine>>,
}

impl PostbackLog {
    /// A log that keeps the newest `keep` entries of each list.
    pub fn new(keep: usize) -> Self {
        Self {
            keep,
            queue: BatchQueue::default(),
        }
    }

    /// The newest entries kept per list.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Queues an entry for its offer's accepted or refused list; never waits.
    pub fn append(&self, offer: Option<OfferId>, entry: &PostbackLogEntry) {
        let Ok(json) = serde_json::to_string(entry) else {
            return;
        };
        let line = PostbackLogLine {
            offer,
            kind: entry.kind(),
            json,
        };
        self.queue.push(|queued| {
            if queued.len() < QUEUE_CAPACITY {
                queued.push(line);
            } else {
                log::debug!("postback log queue full: entry dropped");
            }
        });
    }

    /// Waits until something is queued.
    pub async fn wait(&self) {
        self.queue.wait().await;
    }

    /// Files everything queued in one round trip; answers how many entries
    /// were lost if the write failed.
    pub async fn write(&self, store: &dyn Store) -> Result<(), (usize, StoreError)> {
        let (_turn, batch) = self.queue.take().await;
        if batch.is_empty() {
            return Ok(());
        }
        let count = batch.len();
        let retention = LogRetention {
            keep: self.keep,
            ttl_secs: LOG_TTL_SECS,
        };
        store
            .append_postback_logs(batch, retention)
            .await
            .map_err(|e| (count, e))
    }
}

/// Where an entry stands in the timeline, read back from its JSON.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize)]
pub struct Position {
    /// Unix seconds.
    #[serde(default)]
    pub at: u64,
    /// The instance's sequence number.
    #[serde(default)]
    pub seq: u64,
}

/// Merges entries of several lists into one timeline, newest first, at most
/// `limit`.
pub fn merge_newest_first(entries: Vec<String>, limit: usize) -> Vec<String> {
    let mut all: Vec<(Position, String)> = entries
        .into_iter()
        .map(|json| {
            (
                serde_json::from_str::<Position>(&json).unwrap_or_default(),
                json,
            )
        })
        .collect();
    all.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
    all.into_iter().take(limit).map(|(_, json)| json).collect()
}

/// A postback log entry's `warning`: `PostbackWarning::as_str`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WarningName {
    /// Answered duplicate while carrying an unread parameter that looks like
    /// an event or an order id.
    IgnoredEventParam,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn refused(at: u64) -> PostbackLogEntry {
        PostbackLogEntry::new(None, None, &Err(PostbackError::InvalidToken), at)
    }

    #[tokio::test]
    async fn entries_queued_together_are_all_filed_in_order() {
        let store = MemoryStore::new();
        let log = PostbackLog::new(100);
        let offer = OfferId::parse("o1").expect("id");
        for at in 0..300 {
            log.append(Some(offer.clone()), &refused(at));
        }
        log.write(&store).await.expect("written");
        let filed = store
            .read_postback_log(Some(&offer), PostbackLogKind::Refused, 100)
            .await
            .expect("read");
        let ats: Vec<u64> = filed
            .iter()
            .map(|json| {
                serde_json::from_str::<serde_json::Value>(json).expect("json")["at"]
                    .as_u64()
                    .expect("at")
            })
            .collect();
        assert_eq!(ats, (200..300).rev().collect::<Vec<u64>>());
    }

    #[test]
    fn outside_a_runtime_an_entry_is_kept_not_a_panic() {
        let log = PostbackLog::new(10);
        log.append(None, &refused(0));
    }
}
