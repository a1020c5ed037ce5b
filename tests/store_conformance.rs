//! One suite, two stores: every test here runs against `RedisStore` (a real
//! redis-server) and `MemoryStore`, so the demo store cannot drift from the
//! production one.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use clickback::domain::conversion::{ConversionCommand, ConversionOutcome, StatusChange};
use clickback::domain::conversion::{RejectReason, MAX_COUNTER_MICROS};
use clickback::domain::counter::{Counter, Dimension};
use clickback::domain::delivery::{
    AttemptRecord, AttemptReport, Delivery, DeliveryContext, DeliveryId, DeliveryOrder,
    DeliveryState, DestinationOrder,
};
use clickback::domain::destination::DestinationKind;
use clickback::domain::offer::OfferInput;
use clickback::domain::{
    Advertiser, AdvertiserId, Affiliate, AffiliateId, ApiKey, Click, ClickId, ConversionStatus,
    Day, Identity, KeyRole, Money, Offer, OfferId,
};
use clickback::store::keys::{counter_field, Keys};
use clickback::store::{
    AuditLine, AuditRetention, ConversionFilter, ConversionQuery, DeliveryQuery, DeliveryScope,
    Lease, LogRetention, MemoryStore, PostbackLogKind, PostbackLogLine, RetryOutcome, Store,
};

/// A store under test; for Redis, the prefix is deleted afterwards.
struct Subject {
    store: Arc<dyn Store>,
    cleanup: Option<(String, String)>,
}

impl Drop for Subject {
    fn drop(&mut self) {
        if let Some((url, prefix)) = &self.cleanup {
            redis_server::delete_prefix(url, prefix);
        }
    }
}

fn redis_store() -> Subject {
    let url = redis_server::shared_redis_url();
    let prefix = redis_server::random_prefix();
    let store =
        redis_server::open_store(&url, Keys::new(prefix.clone()), 16, Duration::from_secs(2));
    Subject {
        store: Arc::new(store),
        cleanup: Some((url, prefix)),
    }
}

fn memory_store() -> Subject {
    Subject {
        store: Arc::new(MemoryStore::new()),
        cleanup: None,
    }
}

/// Declares `async fn $name(store: Arc<dyn Store>)` once and runs it on both stores.
macro_rules! conformance {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn on_redis() {
                let subject = redis_store();
                ($body)(Arc::clone(&subject.store)).await;
            }

            #[tokio::test]
            async fn on_memory() {
                let subject = memory_store();
                ($body)(Arc::clone(&subject.store)).await;
            }
        }
    };
}

fn offer_id() -> OfferId {
    OfferId::parse("o1").expect("id")
}

fn aff_id() -> AffiliateId {
    AffiliateId::parse("a1").expect("id")
}

/// A click of the standard test visitor; its id is in the visitor's shard,
/// as `click::track` mints them.
fn click_at(created_at: u64) -> Click {
    Click {
        id: ClickId::generate_in_shard('a'),
        offer_id: offer_id(),
        aff_id: aff_id(),
        subs: [
            "s1".into(),
            "".into(),
            "é & =".into(),
            "".into(),
            "5".into(),
        ],
        source: "newsletter".into(),
        created_at,
        expires_at: created_at + 3_600,
        visitor: "abcdefghijk".into(),
        ad_ids: Default::default(),
    }
}

fn visitor_click(visitor: &str) -> Click {
    Click {
        id: ClickId::generate_in_shard(visitor.chars().next().unwrap_or('A')),
        visitor: visitor.to_owned(),
        ..click_at(now())
    }
}

fn now() -> u64 {
    clickback::domain::unix_now()
}

fn command(
    click: &Click,
    identity: Identity,
    status: ConversionStatus,
    payout: &str,
) -> ConversionCommand {
    ConversionCommand {
        click_id: click.id.clone(),
        identity,
        offer_id: click.offer_id.clone(),
        aff_id: click.aff_id.clone(),
        status,
        payout: Some(Money::parse(payout).expect("money")),
        revenue: Some(Money::parse("10").expect("money")),
        new_conversion_id: ClickId::generate().as_str().to_owned(),
        today: Day::today(),
        seen_day: None,
        retention_secs: 3600,
        reason: None,
        now: now(),
        delivery: None,
        seen_conversion_id: None,
        context: DeliveryContext {
            subs: click.subs.clone(),
            source: click.source.clone(),
            currency: "EUR".into(),
            ..DeliveryContext::default()
        },
        must_exist: false,
    }
}

fn goal(name: &str) -> Identity {
    Identity::Goal(name.to_owned())
}

async fn counters_today(store: &dyn Store) -> clickback::store::DayCounters {
    store
        .read_counters(&[Day::today()])
        .await
        .expect("counters")
        .remove(0)
}

fn count(counters: &clickback::store::DayCounters, counter: Counter) -> i128 {
    counters
        .get(&counter_field("o1", "a1", counter))
        .copied()
        .unwrap_or(0)
}

conformance!(a_recorded_click_reads_back_whole, |store: Arc<
    dyn Store,
>| async move {
    let click = click_at(now());
    store.record_click(&click, 0).await.expect("recorded");
    let found = store
        .lookup_conversion(&click.id, &goal("default"), now())
        .await
        .expect("lookup");
    assert_eq!(found.click, Some(click));
    assert_eq!(found.conversion, None);
});

conformance!(
    an_unknown_click_is_not_found,
    |store: Arc<dyn Store>| async move {
        let found = store
            .lookup_conversion(&ClickId::generate(), &goal("default"), now())
            .await
            .expect("lookup");
        assert!(found.click.is_none() && found.conversion.is_none());
    }
);

conformance!(a_click_expires_with_its_attribution_window, |store: Arc<
    dyn Store,
>| async move {
    let click = Click {
        expires_at: now() + 1,
        ..click_at(now())
    };
    store.record_click(&click, 0).await.expect("recorded");
    let found = store
        .lookup_conversion(&click.id, &goal("default"), click.expires_at)
        .await
        .expect("lookup");
    assert_eq!(found.click, None);
});

conformance!(
    clicks_stored_together_keep_their_own_windows,
    |store: Arc<dyn Store>| async move {
        // Same shard, hour and (single) bucket: one hash in Redis.
        let at = now();
        let short = Click {
            id: ClickId::mint('a', at, 1),
            expires_at: at + 1,
            ..click_at(at)
        };
        let long = Click {
            id: ClickId::mint('a', at, 1),
            ..click_at(at)
        };
        store.record_click(&long, 0).await.expect("recorded");
        store.record_click(&short, 0).await.expect("recorded");
        let lookup = |id: ClickId| {
            let store = Arc::clone(&store);
            async move {
                store
                    .lookup_conversion(&id, &goal("default"), at + 2)
                    .await
                    .expect("lookup")
                    .click
            }
        };
        assert_eq!(lookup(short.id.clone()).await, None, "short window closed");
        assert_eq!(lookup(long.id.clone()).await, Some(long));
    }
);

conformance!(
    clicks_and_declined_clicks_are_counted_per_day,
    |store: Arc<dyn Store>| async move {
        for _ in 0..3 {
            store
                .record_click(&click_at(now()), 0)
                .await
                .expect("recorded");
        }
        store
            .count_untracked_click(&offer_id(), &aff_id(), now(), Counter::Declined)
            .await
            .expect("counted");
        let yesterday = Day::today().minus(1);
        store
            .record_click(&click_at(now() - 86_400), 0)
            .await
            .expect("recorded");

        let counters = store
            .read_counters(&[yesterday, Day::today()])
            .await
            .expect("counters");
        assert_eq!(count(&counters[0], Counter::Clicks), 1);
        assert_eq!(count(&counters[1], Counter::Clicks), 3);
        assert_eq!(count(&counters[1], Counter::Declined), 1);
    }
);

conformance!(
    a_conversion_is_created_once_and_then_duplicate,
    |store: Arc<dyn Store>| async move {
        let click = click_at(now());
        store.record_click(&click, 0).await.expect("recorded");
        let first = store
            .apply_conversion(&command(
                &click,
                goal("default"),
                ConversionStatus::Approved,
                "2.5",
            ))
            .await;
        let ConversionOutcome::Created(created) = first.expect("applied") else {
            panic!("not created")
        };
        let second = store
            .apply_conversion(&command(
                &click,
                goal("default"),
                ConversionStatus::Approved,
                "2.5",
            ))
            .await;
        let ConversionOutcome::Duplicate(duplicate) = second.expect("applied") else {
            panic!("not duplicate")
        };
        assert_eq!(duplicate.conversion_id, created.conversion_id);

        let counters = counters_today(store.as_ref()).await;
        assert_eq!(count(&counters, Counter::Conversions), 1);
        assert_eq!(count(&counters, Counter::Payout), 2_500_000);
        assert_eq!(count(&counters, Counter::Revenue), 10_000_000);
        let found = store
            .lookup_conversion(&click.id, &goal("default"), now())
            .await
            .expect("lookup");
        assert_eq!(found.conversion, Some(created));
    }
);

conformance!(
    racing_identical_conversions_credit_exactly_once,
    |store: Arc<dyn Store>| async move {
        let click = click_at(now());
        store.record_click(&click, 0).await.expect("recorded");
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let store = Arc::clone(&store);
                let command = command(
                    &click,
                    Identity::Txid("order-1".into()),
                    ConversionStatus::Approved,
                    "2.5",
                );
                tokio::spawn(async move { store.apply_conversion(&command).await })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            if let ConversionOutcome::Created(_) = task.await.expect("joined").expect("applied") {
                created += 1;
            }
        }
        assert_eq!(created, 1);
        let counters = counters_today(store.as_ref()).await;
        assert_eq!(count(&counters, Counter::Conversions), 1);
        assert_eq!(count(&counters, Counter::Payout), 2_500_000);
    }
);

conformance!(
    txid_and_goal_identities_are_separate_conversions,
    |store: Arc<dyn Store>| async move {
        let click = click_at(now());
        for identity in [
            Identity::Txid("default".into()),
            goal("default"),
            Identity::Txid("t2".into()),
            goal("sale"),
        ] {
            let outcome = store
                .apply_conversion(&command(&click, identity, ConversionStatus::Approved, "1"))
                .await;
            assert!(matches!(outcome, Ok(ConversionOutcome::Created(_))));
        }
        assert_eq!(
            count(&counters_today(store.as_ref()).await, Counter::Conversions),
            4
        );
    }
);

conformance!(status_changes_follow_the_documented_table, |store: Arc<
    dyn Store,
>| async move {
    use ConversionStatus::*;
    for from in [Approved, Pending, Rejected] {
        for to in [Approved, Pending, Rejected] {
            let click = click_at(now());
            let identity = goal(&format!("{from:?}-{to:?}"));
            store
                .apply_conversion(&command(&click, identity.clone(), from, "3"))
                .await
                .expect("created");
            let outcome = store
                .apply_conversion(&command(&click, identity, to, "3"))
                .await
                .expect("applied");
            match outcome {
                ConversionOutcome::Updated { record, previous } => {
                    assert!(from.can_move_to(to), "{from:?} -> {to:?} moved");
                    assert_eq!((previous, record.status), (from, to));
                }
                ConversionOutcome::Duplicate(record) => {
                    assert!(!from.can_move_to(to), "{from:?} -> {to:?} did not move");
                    assert_eq!(record.status, from);
                }
                other => panic!("{from:?} -> {to:?}: {other:?}"),
            }
        }
    }
    // Final statuses: A→A a, A→P a, A→R r, P→A a, P→P p, P→R r, R→* r.
    let counters = counters_today(store.as_ref()).await;
    assert_eq!(count(&counters, Counter::Conversions), 3);
    assert_eq!(count(&counters, Counter::Payout), 9_000_000);
    assert_eq!(count(&counters, Counter::Pending), 1);
    assert_eq!(count(&counters, Counter::PendingPayout), 3_000_000);
    assert_eq!(count(&counters, Counter::Rejected), 5);
});

conformance!(
    an_approval_without_amount_keeps_the_pending_payout,
    |store: Arc<dyn Store>| async move {
        let click = click_at(now());
        store
            .apply_conversion(&command(
                &click,
                goal("g"),
                ConversionStatus::Pending,
                "7.25",
            ))
            .await
            .expect("created");
        let mut approve = command(&click, goal("g"), ConversionStatus::Approved, "0");
        approve.payout = None;
        approve.revenue = None;
        let outcome = store.apply_conversion(&approve).await.expect("applied");
        let ConversionOutcome::Updated { record, .. } = outcome else {
            panic!("not updated: {outcome:?}")
        };
        assert_eq!(record.payout.to_string(), "7.25");
        let counters = counters_today(store.as_ref()).await;
        assert_eq!(
            (
                count(&counters, Counter::Pending),
                count(&counters, Counter::PendingPayout)
            ),
            (0, 0)
        );
        assert_eq!(count(&counters, Counter::Payout), 7_250_000);
    }
);

conformance!(
    a_status_change_moves_the_counters_of_the_conversions_own_day,
    |store: Arc<dyn Store>| async move {
        let click = click_at(now());
        let yesterday = Day::today().minus(1);
        let mut create = command(&click, goal("g"), ConversionStatus::Pending, "5");
        create.today = yesterday;
        store.apply_conversion(&create).await.expect("created");

        // Told nothing about yesterday, the store asks the caller to look again.
        let blind = command(&click, goal("g"), ConversionStatus::Approved, "5");
        assert_eq!(
            store.apply_conversion(&blind).await.expect("applied"),
            ConversionOutcome::Retry
        );

        let mut informed = command(&click, goal("g"), ConversionStatus::Approved, "5");
        informed.seen_day = Some(yesterday);
        assert!(matches!(
            store.apply_conversion(&informed).await,
            Ok(ConversionOutcome::Updated { .. })
        ));
        let counters = store
            .read_counters(&[yesterday, Day::today()])
            .await
            .expect("counters");
        assert_eq!(count(&counters[0], Counter::Conversions), 1);
        assert_eq!(count(&counters[0], Counter::Pending), 0);
        assert_eq!(count(&counters[1], Counter::Conversions), 0);
    }
);

conformance!(
    large_payouts_stay_exact,
    |store: Arc<dyn Store>| async move {
        // 2^53 micro-units and beyond: a Lua double would round these.
        let click = click_at(now());
        let big = "9007199254.740993";
        store
            .apply_conversion(&command(&click, goal("a"), ConversionStatus::Approved, big))
            .await
            .expect("created");
        let mut reject = command(&click, goal("a"), ConversionStatus::Rejected, big);
        reject.payout = None;
        store
            .apply_conversion(&command(&click, goal("b"), ConversionStatus::Approved, big))
            .await
            .expect("created");
        store.apply_conversion(&reject).await.expect("rejected");
        let counters = counters_today(store.as_ref()).await;
        assert_eq!(count(&counters, Counter::Payout), 9_007_199_254_740_993);
    }
);

conformance!(
    config_writes_bump_the_version_and_load_back,
    |store: Arc<dyn Store>| async move {
        let before = store.config_version().await.expect("version");
        let input: OfferInput = serde_json::from_str(
            r#"{"url":"https://shop.example/?a=1","payout":"2.5","currency":"EUR","postback_token":"tok-12345"}"#,
        )
        .expect("input");
        let offer = Offer::from_input(offer_id(), input).expect("offer");
        store.put_offer(&offer).await.expect("stored");
        let affiliate = Affiliate::from_input(
            aff_id(),
            serde_json::from_str(r#"{"name":"A"}"#).expect("input"),
        )
        .expect("aff");
        store.put_affiliate(&affiliate).await.expect("stored");

        let after = store.config_version().await.expect("version");
        assert!(
            after >= before + 2,
            "version moved from {before} to {after}"
        );
        let data = store.load_config().await.expect("loaded");
        assert_eq!(data.version, after);
        assert_eq!(data.offers, vec![offer]);
        assert_eq!(data.affiliates, vec![affiliate]);
    }
);

conformance!(
    a_reachable_store_answers_ping,
    |store: Arc<dyn Store>| async move {
        store.ping().await.expect("pong");
    }
);

conformance!(
    a_repeat_visitor_within_the_window_is_not_unique,
    |store: Arc<dyn Store>| async move {
        let first = click_at(now());
        let again = click_at(now());
        let other_visitor = visitor_click("zyxwvutsrqp");

        assert!(store.record_click(&first, 3600).await.expect("recorded"));
        assert!(!store.record_click(&again, 3600).await.expect("recorded"));
        assert!(store
            .record_click(&other_visitor, 3600)
            .await
            .expect("recorded"));

        // A duplicate is still a click: stored, creditable, counted.
        let stored = store
            .lookup_conversion(&again.id, &goal("default"), now())
            .await
            .expect("lookup");
        assert_eq!(stored.click.map(|c| c.id), Some(again.id.clone()));
        let counters = counters_today(store.as_ref()).await;
        assert_eq!(count(&counters, Counter::Clicks), 3);
        assert_eq!(count(&counters, Counter::UniqueClicks), 2);
    }
);

conformance!(
    duplicate_detection_forgets_after_its_window,
    |store: Arc<dyn Store>| async move {
        let first = click_at(now());
        let later = click_at(now());
        assert!(store.record_click(&first, 1).await.expect("recorded"));
        // The marker lives one second of the store's own clock (a Redis TTL):
        // poll, with a deadline, until a repeat click counts as unique again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let later = Click {
                id: ClickId::generate_in_shard(later.id.shard()),
                ..later.clone()
            };
            if store.record_click(&later, 1).await.expect("recorded") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the duplicate marker never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
);

fn cap_entry(field: &str, increment: i64, limit: i64) -> clickback::store::CapEntry {
    clickback::store::CapEntry {
        period_id: "d20261123".into(),
        field: field.into(),
        increment,
        limit,
        ttl_secs: Some(600),
    }
}

conformance!(caps_reserve_all_or_nothing_and_release, |store: Arc<
    dyn Store,
>| async move {
    let offer = offer_id();
    let entries = vec![
        cap_entry("o:cv", 1, 2),
        cap_entry("a:py:a1", 3_000_000, 5_000_000),
    ];
    assert_eq!(
        store
            .reserve_caps(&offer, &entries)
            .await
            .expect("reserved"),
        None
    );
    // The payout cap (3 + 3 > 5) is full; the conversions cap must not move either.
    assert_eq!(
        store.reserve_caps(&offer, &entries).await.expect("refused"),
        Some(1)
    );
    let read = store
        .read_caps(&offer, &["d20261123".to_owned()])
        .await
        .expect("read");
    assert_eq!(read[0].get("o:cv"), Some(&1));
    assert_eq!(read[0].get("a:py:a1"), Some(&3_000_000));

    store
        .release_caps(&offer, &entries)
        .await
        .expect("released");
    let read = store
        .read_caps(&offer, &["d20261123".to_owned()])
        .await
        .expect("read");
    assert_eq!(read[0].get("o:cv").copied().unwrap_or(0), 0);
});

conformance!(racing_reservations_never_exceed_a_cap, |store: Arc<
    dyn Store,
>| async move {
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let entries = vec![cap_entry("o:cv", 1, 7)];
                store.reserve_caps(&offer_id(), &entries).await
            })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if task.await.expect("joined").expect("answered").is_none() {
            granted += 1;
        }
    }
    assert_eq!(granted, 7);
});

conformance!(a_signature_is_claimed_once_until_released, |store: Arc<
    dyn Store,
>| async move {
    let sig = "ab".repeat(32);
    assert!(store.claim(&sig, 60).await.expect("claimed"));
    assert!(!store.claim(&sig, 60).await.expect("answered"));
    store.release_claim(&sig).await.expect("released");
    assert!(store.claim(&sig, 60).await.expect("claimed again"));
});

const RETENTION: LogRetention = LogRetention {
    keep: 3,
    ttl_secs: 3600,
};

fn log_line(offer: Option<OfferId>, kind: PostbackLogKind, json: String) -> PostbackLogLine {
    PostbackLogLine { offer, kind, json }
}

conformance!(
    the_postback_log_keeps_the_newest_entries_per_offer,
    |store: Arc<dyn Store>| async move {
        let offer = offer_id();
        let entry = |i: usize| {
            log_line(
                Some(offer.clone()),
                PostbackLogKind::Accepted,
                format!("{{\"n\":{i}}}"),
            )
        };
        let unattributed = log_line(None, PostbackLogKind::Refused, "{\"n\":\"x\"}".into());
        // One batch mixing two logs, then a batch of one: order is kept
        // within and across batches.
        store
            .append_postback_logs(vec![entry(0), entry(1), unattributed, entry(2)], RETENTION)
            .await
            .expect("logged");
        store
            .append_postback_logs(vec![entry(3)], RETENTION)
            .await
            .expect("logged");
        store
            .append_postback_logs(vec![entry(4)], RETENTION)
            .await
            .expect("logged");
        let read = |offer: Option<OfferId>, kind, limit| {
            let store = Arc::clone(&store);
            async move {
                store
                    .read_postback_log(offer.as_ref(), kind, limit)
                    .await
                    .expect("read")
            }
        };
        assert_eq!(
            read(Some(offer.clone()), PostbackLogKind::Accepted, 10).await,
            vec!["{\"n\":4}", "{\"n\":3}", "{\"n\":2}"]
        );
        assert_eq!(
            read(Some(offer.clone()), PostbackLogKind::Accepted, 1)
                .await
                .len(),
            1
        );
        assert_eq!(
            read(None, PostbackLogKind::Refused, 10).await,
            vec!["{\"n\":\"x\"}"]
        );
        assert!(read(None, PostbackLogKind::Accepted, 10).await.is_empty());
    }
);

conformance!(
    refused_postbacks_never_push_accepted_ones_out_of_the_log,
    |store: Arc<dyn Store>| async move {
        let offer = offer_id();
        let accepted = log_line(
            Some(offer.clone()),
            PostbackLogKind::Accepted,
            "{\"ok\":1}".into(),
        );
        store
            .append_postback_logs(vec![accepted], RETENTION)
            .await
            .expect("logged");
        let refusals = (0..1000)
            .map(|i| {
                log_line(
                    Some(offer.clone()),
                    PostbackLogKind::Refused,
                    format!("{{\"bad\":{i}}}"),
                )
            })
            .collect();
        store
            .append_postback_logs(refusals, RETENTION)
            .await
            .expect("logged");
        let accepted = store
            .read_postback_log(Some(&offer), PostbackLogKind::Accepted, 10)
            .await
            .expect("read");
        let refused = store
            .read_postback_log(Some(&offer), PostbackLogKind::Refused, 10)
            .await
            .expect("read");
        assert_eq!(accepted, vec!["{\"ok\":1}"]);
        assert_eq!(refused.len(), RETENTION.keep);
    }
);

conformance!(
    a_backlog_of_twenty_thousand_log_entries_is_filed_in_one_batch_keeping_the_newest,
    |store: Arc<dyn Store>| async move {
        // A batch that queued up while Redis was away: one log, 20,000
        // entries, 5,000 kept.
        let offer = offer_id();
        let retention = LogRetention {
            keep: 5_000,
            ttl_secs: 3600,
        };
        let backlog = (0..20_000)
            .map(|i| {
                log_line(
                    Some(offer.clone()),
                    PostbackLogKind::Accepted,
                    format!("{{\"n\":{i}}}"),
                )
            })
            .collect();

        store
            .append_postback_logs(backlog, retention)
            .await
            .expect("the whole batch is filed");

        let kept = store
            .read_postback_log(Some(&offer), PostbackLogKind::Accepted, 6_000)
            .await
            .expect("read");
        let expected: Vec<String> = (15_000..20_000)
            .rev()
            .map(|i| format!("{{\"n\":{i}}}"))
            .collect();
        assert_eq!(kept, expected, "the newest 5,000, newest first");
    }
);

conformance!(a_rule_rejection_keeps_its_reason, |store: Arc<
    dyn Store,
>| async move {
    let click = click_at(now());
    let mut rejection = command(&click, goal("g"), ConversionStatus::Rejected, "2");
    rejection.reason = Some(RejectReason::TooFast);
    let ConversionOutcome::Created(record) =
        store.apply_conversion(&rejection).await.expect("applied")
    else {
        panic!("not created")
    };
    assert_eq!(record.reason, Some(RejectReason::TooFast));
    let approve = command(&click, goal("g"), ConversionStatus::Approved, "2");
    let outcome = store.apply_conversion(&approve).await.expect("applied");
    assert!(
        matches!(outcome, ConversionOutcome::Duplicate(ref r) if r.reason == Some(RejectReason::TooFast)),
        "{outcome:?}"
    );
});

/// The unique count follows a click in the background, summed over many
/// clicks: the store says it holds counts back, one flush (what the
/// background writer runs) writes them to Redis without anyone reading the
/// counters, and a burst of racing clicks counts exactly.
#[tokio::test]
async fn unique_counts_reach_redis_in_the_background_and_exactly() {
    let subject = redis_store();
    let store = Arc::clone(&subject.store);
    let visitors: Vec<String> = (0..200).map(|i| format!("v{i:010}")).collect();
    let mut racing = Vec::new();
    for visitor in &visitors {
        for _ in 0..2 {
            let store = Arc::clone(&store);
            let click = visitor_click(visitor);
            racing.push(tokio::spawn(async move {
                store.record_click(&click, 3600).await.expect("recorded")
            }));
        }
    }
    let mut unique = 0;
    for click in racing {
        unique += usize::from(click.await.expect("joined"));
    }
    assert_eq!(unique, visitors.len(), "one unique click per visitor");

    // Straight from Redis, not through read_counters (which flushes first).
    let (url, prefix) = subject.cleanup.clone().expect("a redis subject");
    let keys = Keys::new(prefix);
    let mut conn = redis_server::connect(&url).expect("connection");
    let field = counter_field("o1", "a1", Counter::UniqueClicks);
    tokio::time::timeout(Duration::from_secs(10), store.write_behind_ready())
        .await
        .expect("the store says it holds counts back")
        .expect("ready");
    store.flush().await.expect("written");
    let mut written = 0;
    for key in keys.stats_all_shards(Day::today()) {
        let n: Option<i64> = redis::cmd("HGET")
            .arg(&key)
            .arg(&field)
            .query(&mut conn)
            .expect("HGET");
        written += n.unwrap_or(0);
    }
    assert_eq!(written, 200, "unique counts written without a read");
    let counters = counters_today(store.as_ref()).await;
    assert_eq!(count(&counters, Counter::Clicks), 400);
    assert_eq!(count(&counters, Counter::UniqueClicks), 200);
}

conformance!(
    a_credit_that_would_overflow_a_counter_writes_nothing,
    |store: Arc<dyn Store>| async move {
        // Each conversion pays just under a quarter of the bound (2^63 - 1
        // micro-units, what Redis counters hold): the fifth
        // would pass it. It must be refused whole: no conversion, no count.
        let big = Money::from_micros(MAX_COUNTER_MICROS / 4 - 1);
        let click = click_at(now());
        for i in 0..4 {
            let mut credit = command(
                &click,
                goal(&format!("g{i}")),
                ConversionStatus::Approved,
                "1",
            );
            credit.payout = Some(big);
            credit.revenue = Some(Money::ZERO);
            let outcome = store.apply_conversion(&credit).await.expect("applied");
            assert!(
                matches!(outcome, ConversionOutcome::Created(_)),
                "{outcome:?}"
            );
        }
        let mut fifth = command(&click, goal("g4"), ConversionStatus::Approved, "1");
        fifth.payout = Some(big);
        fifth.revenue = Some(Money::ZERO);
        let outcome = store.apply_conversion(&fifth).await.expect("applied");
        assert_eq!(outcome, ConversionOutcome::TooLarge);
        let counters = counters_today(store.as_ref()).await;
        assert_eq!(count(&counters, Counter::Conversions), 4);
        assert_eq!(
            count(&counters, Counter::Payout),
            4 * i128::from(big.micros())
        );
        let found = store
            .lookup_conversion(&click.id, &goal("g4"), now())
            .await
            .expect("lookup");
        assert_eq!(found.conversion, None, "half a conversion was written");
    }
);

conformance!(
    a_status_change_that_would_overflow_a_counter_changes_nothing,
    |store: Arc<dyn Store>| async move {
        let big = Money::from_micros(MAX_COUNTER_MICROS / 4 - 1);
        let click = click_at(now());
        let credit = |identity: &str, status| {
            let mut credit = command(&click, goal(identity), status, "1");
            credit.payout = Some(big);
            credit.revenue = Some(Money::ZERO);
            credit
        };
        for i in 0..4 {
            let outcome = store
                .apply_conversion(&credit(&format!("g{i}"), ConversionStatus::Approved))
                .await
                .expect("applied");
            assert!(
                matches!(outcome, ConversionOutcome::Created(_)),
                "{outcome:?}"
            );
        }
        let pending = store
            .apply_conversion(&credit("p", ConversionStatus::Pending))
            .await
            .expect("applied");
        assert!(
            matches!(pending, ConversionOutcome::Created(_)),
            "{pending:?}"
        );

        // Approving it would take the day's payout past the bound.
        let outcome = store
            .apply_conversion(&credit("p", ConversionStatus::Approved))
            .await
            .expect("applied");

        assert_eq!(outcome, ConversionOutcome::TooLarge);
        let counters = counters_today(store.as_ref()).await;
        assert_eq!(count(&counters, Counter::Conversions), 4);
        assert_eq!(count(&counters, Counter::Pending), 1);
        assert_eq!(
            count(&counters, Counter::PendingPayout),
            i128::from(big.micros())
        );
        assert_eq!(
            count(&counters, Counter::Payout),
            4 * i128::from(big.micros())
        );
        let found = store
            .lookup_conversion(&click.id, &goal("p"), now())
            .await
            .expect("lookup");
        assert_eq!(
            found.conversion.map(|c| c.status),
            Some(ConversionStatus::Pending)
        );
    }
);

// Affiliate postback deliveries.

const T0: u64 = 1_800_000_000_000;

fn order(now_ms: u64) -> DeliveryOrder {
    DeliveryOrder {
        amount: Some(Money::parse("19.99").expect("money")),
        now_ms,
        retention_secs: 3600,
        affiliate: true,
        destinations: Vec::new(),
    }
}

fn destination(id: &str, kind: DestinationKind) -> DestinationOrder {
    DestinationOrder {
        id: id.to_owned(),
        kind,
    }
}

/// A conversion of a fresh click, credited with its delivery queued at `now_ms`.
async fn delivered_conversion(
    store: &dyn Store,
    status: ConversionStatus,
    now_ms: u64,
) -> (Click, ConversionCommand) {
    let click = click_at(now());
    store.record_click(&click, 0).await.expect("recorded");
    let command = ConversionCommand {
        delivery: Some(order(now_ms)),
        ..command(&click, goal("default"), status, "2.5")
    };
    let outcome = store.apply_conversion(&command).await.expect("applied");
    assert!(
        matches!(outcome, ConversionOutcome::Created(_)),
        "{outcome:?}"
    );
    (click, command)
}

async fn claim_all(store: &dyn Store, shard: char, now_ms: u64, lease: Lease) -> Vec<Delivery> {
    store
        .claim_deliveries(shard, now_ms, lease, 100)
        .await
        .expect("claimed")
        .into_iter()
        .map(|entry| entry.expect("record present"))
        .collect()
}

fn report(record: AttemptRecord, now_ms: u64) -> AttemptReport {
    AttemptReport {
        record,
        now_ms,
        url: Some("https://aff.example/pb?c={click_id}".into()),
        retention_secs: 3600,
    }
}

conformance!(
    a_credited_conversion_queues_its_delivery_with_the_clicks_subs,
    |store: Arc<dyn Store>| async move {
        let (click, command) =
            delivered_conversion(store.as_ref(), ConversionStatus::Approved, T0).await;

        let claimed = claim_all(
            store.as_ref(),
            click.id.shard(),
            T0,
            Lease::until(T0 + 30_000, 0.1),
        )
        .await;

        assert_eq!(claimed.len(), 1);
        let d = &claimed[0];
        assert_eq!(
            d.id,
            DeliveryId::new(
                click.id.shard(),
                &command.new_conversion_id,
                ConversionStatus::Approved
            )
        );
        assert_eq!(d.conversion_id, command.new_conversion_id);
        assert_eq!(d.click_id, click.id.as_str());
        assert_eq!(d.status, ConversionStatus::Approved);
        assert_eq!(d.payout, Money::parse("2.5").expect("money"));
        assert_eq!(d.amount, Some(Money::parse("19.99").expect("money")));
        assert_eq!(d.context, command.context, "the click's subs and source");
        assert_eq!(
            (d.state, d.attempts, d.created_at_ms),
            (DeliveryState::Pending, 0, T0)
        );
    }
);

conformance!(
    a_conversion_queues_one_delivery_per_destination_and_the_offer_log_lists_them_all,
    |store: Arc<dyn Store>| async move {
        let click = click_at(now());
        store.record_click(&click, 0).await.expect("recorded");
        let to_all = DeliveryOrder {
            destinations: vec![
                destination("ga4", DestinationKind::Ga4),
                destination("hook-2", DestinationKind::Webhook),
            ],
            ..order(T0)
        };
        let created = ConversionCommand {
            delivery: Some(to_all.clone()),
            ..command(&click, goal("default"), ConversionStatus::Pending, "2.5")
        };
        store.apply_conversion(&created).await.expect("applied");
        // A status change queues again, for the destinations only.
        let change = ConversionCommand {
            delivery: Some(DeliveryOrder {
                affiliate: false,
                destinations: vec![destination("ga4", DestinationKind::Ga4)],
                ..order(T0 + 1_000)
            }),
            seen_conversion_id: Some(created.new_conversion_id.clone()),
            new_conversion_id: "unused".into(),
            ..command(&click, goal("default"), ConversionStatus::Approved, "2.5")
        };
        let outcome = store.apply_conversion(&change).await.expect("applied");
        assert!(
            matches!(outcome, ConversionOutcome::Updated { .. }),
            "{outcome:?}"
        );

        let mut claimed = claim_all(
            store.as_ref(),
            click.id.shard(),
            T0 + 1_000,
            Lease::until(T0 + 30_000, 0.1),
        )
        .await;
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        let shard = click.id.shard();
        let cid = created.new_conversion_id.as_str();
        let ids: Vec<&str> = claimed.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                DeliveryId::to_destination(shard, cid, ConversionStatus::Approved, "ga4").as_str(),
                DeliveryId::new(shard, cid, ConversionStatus::Pending).as_str(),
                DeliveryId::to_destination(shard, cid, ConversionStatus::Pending, "ga4").as_str(),
                DeliveryId::to_destination(shard, cid, ConversionStatus::Pending, "hook-2")
                    .as_str(),
            ]
        );
        let destinations: Vec<Option<(&str, DestinationKind)>> = claimed
            .iter()
            .map(|d| {
                d.destination
                    .as_ref()
                    .map(|(id, kind)| (id.as_str(), *kind))
            })
            .collect();
        let ga4 = Some(("ga4", DestinationKind::Ga4));
        let hook = Some(("hook-2", DestinationKind::Webhook));
        assert_eq!(destinations, vec![ga4, None, ga4, hook]);
        for d in &claimed {
            assert_eq!(d.revenue, Money::parse("10").expect("money"));
            assert_eq!(d.converted_at, created.now, "{}", d.id);
            assert_eq!(d.conversion_id, cid);
        }

        let list = |scope: DeliveryScope| {
            let store = Arc::clone(&store);
            async move {
                store
                    .list_deliveries(&DeliveryQuery {
                        scope,
                        limit: 10,
                        after: None,
                    })
                    .await
                    .expect("listed")
                    .deliveries
                    .len()
            }
        };
        assert_eq!(list(DeliveryScope::Offer(click.offer_id.clone())).await, 4);
        assert_eq!(
            list(DeliveryScope::Affiliate(click.aff_id.clone())).await,
            1,
            "an affiliate's log holds its own postbacks only"
        );
        assert_eq!(
            list(DeliveryScope::Offer(OfferId::parse("other").expect("id"))).await,
            0
        );
    }
);

conformance!(
    a_conversion_created_rejected_or_without_an_order_queues_nothing,
    |store: Arc<dyn Store>| async move {
        let (click, _) = delivered_conversion(store.as_ref(), ConversionStatus::Rejected, T0).await;
        let other = click_at(now());
        store.record_click(&other, 0).await.expect("recorded");
        store
            .apply_conversion(&command(
                &other,
                goal("default"),
                ConversionStatus::Approved,
                "1",
            ))
            .await
            .expect("applied");

        for shard in [click.id.shard(), other.id.shard()] {
            assert!(
                claim_all(store.as_ref(), shard, T0 + 1, Lease::until(T0 + 9_000, 0.2))
                    .await
                    .is_empty()
            );
        }
        assert_eq!(store.delivery_backlog().await.expect("backlog").pending, 0);
    }
);

conformance!(
    a_status_change_queues_a_second_delivery_with_the_subs_kept_from_creation,
    |store: Arc<dyn Store>| async move {
        let (click, created) =
            delivered_conversion(store.as_ref(), ConversionStatus::Pending, T0).await;
        // The click has expired by the status change: no subs come with it.
        let base = command(&click, goal("default"), ConversionStatus::Approved, "2.5");
        let change = ConversionCommand {
            delivery: Some(order(T0 + 5_000)),
            seen_conversion_id: Some(created.new_conversion_id.clone()),
            new_conversion_id: "unused".into(),
            context: DeliveryContext {
                subs: Default::default(),
                source: String::new(),
                ..base.context.clone()
            },
            ..base
        };
        let outcome = store.apply_conversion(&change).await.expect("applied");
        assert!(
            matches!(outcome, ConversionOutcome::Updated { .. }),
            "{outcome:?}"
        );

        let mut claimed = claim_all(
            store.as_ref(),
            click.id.shard(),
            T0 + 5_000,
            Lease::until(T0 + 60_000, 0.3),
        )
        .await;
        claimed.sort_by_key(|d| d.created_at_ms);

        let statuses: Vec<_> = claimed
            .iter()
            .map(|d| (d.status, d.created_at_ms))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (ConversionStatus::Pending, T0),
                (ConversionStatus::Approved, T0 + 5_000)
            ]
        );
        assert!(claimed
            .iter()
            .all(|d| d.conversion_id == created.new_conversion_id));
        assert_eq!(
            claimed[1].context, created.context,
            "subs of the click, kept"
        );
    }
);

conformance!(
    a_status_change_built_on_another_conversion_than_the_stored_one_asks_for_a_fresh_look,
    |store: Arc<dyn Store>| async move {
        let (click, _) = delivered_conversion(store.as_ref(), ConversionStatus::Pending, T0).await;
        let change = ConversionCommand {
            delivery: Some(order(T0 + 1)),
            seen_conversion_id: Some("someone-else".into()),
            ..command(&click, goal("default"), ConversionStatus::Approved, "2.5")
        };
        assert_eq!(
            store.apply_conversion(&change).await.expect("applied"),
            ConversionOutcome::Retry
        );
        let stats = counters_today(store.as_ref()).await;
        assert_eq!(
            stats.get("o1|a1|pd").copied(),
            Some(1),
            "nothing moved: {stats:?}"
        );
    }
);

conformance!(
    a_leased_delivery_is_not_claimed_again_until_its_lease_ends,
    |store: Arc<dyn Store>| async move {
        let (click, _) = delivered_conversion(store.as_ref(), ConversionStatus::Approved, T0).await;
        let shard = click.id.shard();
        let first = Lease::until(T0 + 30_000, 0.4);
        assert_eq!(claim_all(store.as_ref(), shard, T0, first).await.len(), 1);

        assert!(claim_all(
            store.as_ref(),
            shard,
            T0 + 29_999,
            Lease::until(T0 + 60_000, 0.5)
        )
        .await
        .is_empty());
        let second = Lease::until(T0 + 90_000, 0.6);
        let again = claim_all(store.as_ref(), shard, T0 + 30_001, second).await;
        assert_eq!(
            again.len(),
            1,
            "a lease that ended without a report lets another worker take it"
        );

        let stale = store
            .finish_delivery(
                &again[0].id,
                first,
                &report(AttemptRecord::Delivered { http_status: 200 }, T0 + 30_002),
            )
            .await
            .expect("answered");
        assert!(
            !stale,
            "the first worker lost its lease: its report is refused"
        );
        let current = store
            .finish_delivery(
                &again[0].id,
                second,
                &report(AttemptRecord::Delivered { http_status: 204 }, T0 + 30_003),
            )
            .await
            .expect("answered");
        assert!(current);
        let page = store
            .list_deliveries(&DeliveryQuery {
                scope: DeliveryScope::Affiliate(aff_id()),
                limit: 10,
                after: None,
            })
            .await
            .expect("listed");
        assert_eq!(page.deliveries.len(), 1);
        assert_eq!(page.deliveries[0].state, DeliveryState::Delivered);
        assert_eq!(page.deliveries[0].last_http_status, Some(204));
        assert_eq!(page.deliveries[0].attempts, 1);
    }
);

conformance!(
    a_failed_attempt_is_due_again_at_its_retry_time_and_a_dead_one_waits_for_an_operator,
    |store: Arc<dyn Store>| async move {
        let (click, _) = delivered_conversion(store.as_ref(), ConversionStatus::Approved, T0).await;
        let shard = click.id.shard();
        let lease = Lease::until(T0 + 30_000, 0.7);
        let id = claim_all(store.as_ref(), shard, T0, lease).await[0]
            .id
            .clone();
        let failed = AttemptRecord::Failed {
            http_status: Some(500),
            error: "HTTP 500".into(),
            retry_at_ms: T0 + 10_000,
        };
        assert!(store
            .finish_delivery(&id, lease, &report(failed, T0 + 5))
            .await
            .expect("reported"));

        assert!(claim_all(
            store.as_ref(),
            shard,
            T0 + 9_999,
            Lease::until(T0 + 40_000, 0.1)
        )
        .await
        .is_empty());
        let lease = Lease::until(T0 + 50_000, 0.2);
        let retried = claim_all(store.as_ref(), shard, T0 + 10_000, lease).await;
        assert_eq!(
            (retried.len(), retried[0].attempts, retried[0].run_attempts),
            (1, 1, 1)
        );
        assert_eq!(retried[0].last_http_status, Some(500));
        assert_eq!(retried[0].last_error.as_deref(), Some("HTTP 500"));
        let dead = AttemptRecord::Dead {
            http_status: None,
            error: "timed out".into(),
        };
        assert!(store
            .finish_delivery(&id, lease, &report(dead, T0 + 10_500))
            .await
            .expect("reported"));

        assert!(claim_all(
            store.as_ref(),
            shard,
            T0 + 999_999_999,
            Lease::until(T0 + 1_000_000_000, 0.3)
        )
        .await
        .is_empty());
        let dead_list = store
            .list_deliveries(&DeliveryQuery {
                scope: DeliveryScope::Dead,
                limit: 10,
                after: None,
            })
            .await
            .expect("listed");
        assert_eq!(
            dead_list
                .deliveries
                .iter()
                .map(|d| (&d.id, d.state))
                .collect::<Vec<_>>(),
            vec![(&id, DeliveryState::Dead)]
        );
        assert_eq!(store.delivery_backlog().await.expect("backlog").pending, 0);

        assert_eq!(
            store
                .retry_delivery(&id, T0 + 20_000, 3600)
                .await
                .expect("retried"),
            RetryOutcome::Queued
        );
        let again = claim_all(
            store.as_ref(),
            shard,
            T0 + 20_000,
            Lease::until(T0 + 60_000, 0.4),
        )
        .await;
        assert_eq!(
            (
                again.len(),
                again[0].attempts,
                again[0].run_attempts,
                again[0].state
            ),
            (1, 2, 0, DeliveryState::Pending)
        );
        assert!(store
            .list_deliveries(&DeliveryQuery {
                scope: DeliveryScope::Dead,
                limit: 10,
                after: None
            })
            .await
            .expect("listed")
            .deliveries
            .is_empty());
        let missing = DeliveryId::new(shard, "nothing-here", ConversionStatus::Approved);
        assert_eq!(
            store
                .retry_delivery(&missing, T0, 3600)
                .await
                .expect("answered"),
            RetryOutcome::NotFound
        );
    }
);

conformance!(
    listings_page_newest_first_through_ties_without_losing_or_repeating_an_entry,
    |store: Arc<dyn Store>| async move {
        let mut made = Vec::new();
        for i in 0..7u64 {
            // Pairs share a millisecond: pages must cut through ties.
            let (click, command) =
                delivered_conversion(store.as_ref(), ConversionStatus::Approved, T0 + i / 2).await;
            made.push(DeliveryId::new(
                click.id.shard(),
                &command.new_conversion_id,
                ConversionStatus::Approved,
            ));
        }
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..10 {
            let page = store
                .list_deliveries(&DeliveryQuery {
                    scope: DeliveryScope::Affiliate(aff_id()),
                    limit: 3,
                    after: after.clone(),
                })
                .await
                .expect("listed");
            assert!(page.deliveries.len() <= 3);
            seen.extend(
                page.deliveries
                    .iter()
                    .map(|d| (d.created_at_ms, d.id.clone())),
            );
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(seen.len(), 7, "{seen:?}");
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "newest first");
        made.sort();
        let mut ids: Vec<_> = seen.into_iter().map(|(_, id)| id).collect();
        ids.sort();
        assert_eq!(ids, made);

        let backlog = store.delivery_backlog().await.expect("backlog");
        assert_eq!((backlog.pending, backlog.oldest_created_ms), (7, Some(T0)));
        let pending = store
            .list_deliveries(&DeliveryQuery {
                scope: DeliveryScope::Pending,
                limit: 100,
                after: None,
            })
            .await
            .expect("listed");
        assert_eq!(pending.deliveries.len(), 7);
        assert!(pending.next.is_none());
    }
);

fn all_conversions(limit: usize) -> ConversionQuery {
    ConversionQuery {
        from: 0,
        to: u64::MAX,
        filter: ConversionFilter::default(),
        limit,
        after: None,
    }
}

conformance!(
    conversions_are_listed_newest_first_with_their_context_and_status_history,
    |store: Arc<dyn Store>| async move {
        // Three conversions on two clicks, two of them in one second.
        let first = click_at(now());
        let second = click_at(now());
        let pending = ConversionCommand {
            now: 1_000,
            new_conversion_id: "c-pending".into(),
            ..command(&first, goal("lead"), ConversionStatus::Pending, "1")
        };
        let sale_a = ConversionCommand {
            now: 2_000,
            new_conversion_id: "c-sale-a".into(),
            ..command(
                &first,
                Identity::Txid("T1".into()),
                ConversionStatus::Approved,
                "2",
            )
        };
        let sale_b = ConversionCommand {
            now: 2_000,
            new_conversion_id: "c-sale-b".into(),
            ..command(&second, goal("sale"), ConversionStatus::Approved, "3")
        };
        for c in [&pending, &sale_a, &sale_b] {
            store.apply_conversion(c).await.expect("applied");
        }
        let approve = ConversionCommand {
            now: 3_000,
            seen_day: Some(pending.today),
            status: ConversionStatus::Approved,
            ..pending.clone()
        };
        store.apply_conversion(&approve).await.expect("approved");

        let page = store
            .list_conversions(&all_conversions(10))
            .await
            .expect("listed");
        let ids: Vec<&str> = page
            .conversions
            .iter()
            .map(|e| e.record.conversion_id.as_str())
            .collect();
        assert_eq!(ids, vec!["c-sale-b", "c-sale-a", "c-pending"]);
        assert_eq!(page.next, None);
        let lead = &page.conversions[2];
        assert_eq!(lead.click_id, first.id);
        assert_eq!(lead.identity, goal("lead"));
        assert_eq!(lead.created_at, 1_000);
        assert_eq!(lead.context.subs, first.subs);
        assert_eq!(lead.context.source, "newsletter");
        assert_eq!(
            lead.history,
            vec![
                StatusChange {
                    status: ConversionStatus::Pending,
                    at: 1_000
                },
                StatusChange {
                    status: ConversionStatus::Approved,
                    at: 3_000
                }
            ]
        );

        // Pages of one, split inside the shared second, and the range.
        let mut seen = Vec::new();
        let mut query = all_conversions(1);
        loop {
            let page = store.list_conversions(&query).await.expect("listed");
            seen.extend(
                page.conversions
                    .iter()
                    .map(|e| e.record.conversion_id.clone()),
            );
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        let only_first_second = ConversionQuery {
            from: 1_000,
            to: 2_000,
            ..all_conversions(10)
        };
        let page = store
            .list_conversions(&only_first_second)
            .await
            .expect("listed");
        assert_eq!(page.conversions.len(), 1);
        let approved = ConversionQuery {
            filter: ConversionFilter {
                status: Some(ConversionStatus::Approved),
                goal: Some("sale".into()),
                ..ConversionFilter::default()
            },
            ..all_conversions(10)
        };
        let page = store.list_conversions(&approved).await.expect("listed");
        assert_eq!(page.conversions.len(), 1);
        assert_eq!(page.conversions[0].record.conversion_id, "c-sale-b");
    }
);

conformance!(
    a_conversion_is_found_by_its_id_and_a_manual_change_never_creates_one,
    |store: Arc<dyn Store>| async move {
        let click = click_at(now());
        let created = command(&click, goal("default"), ConversionStatus::Pending, "1");
        store.apply_conversion(&created).await.expect("applied");

        let found = store
            .find_conversion(&created.new_conversion_id)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(found.click_id, click.id);
        assert_eq!(found.identity, goal("default"));
        assert_eq!(found.record.status, ConversionStatus::Pending);
        assert_eq!(store.find_conversion("nothing").await.expect("read"), None);

        let elsewhere = ConversionCommand {
            must_exist: true,
            ..command(&click, goal("other"), ConversionStatus::Approved, "1")
        };
        assert_eq!(
            store.apply_conversion(&elsewhere).await.expect("applied"),
            ConversionOutcome::Missing
        );
        let page = store
            .list_conversions(&all_conversions(10))
            .await
            .expect("listed");
        assert_eq!(page.conversions.len(), 1, "nothing was created");
    }
);

conformance!(
    advertisers_and_keys_load_with_the_config_and_a_deleted_key_is_gone,
    |store: Arc<dyn Store>| async move {
        let advertiser = Advertiser {
            id: AdvertiserId::parse("adv1").expect("id"),
            name: "Adv".into(),
            status: Default::default(),
            show_payouts: true,
        };
        let key = ApiKey {
            id: "k1".into(),
            name: "n".into(),
            role: KeyRole::Admin,
            secret_hash: "h".into(),
            created_at: 7,
        };
        let before = store.config_version().await.expect("version");
        store.put_advertiser(&advertiser).await.expect("put");
        store.put_api_key(&key).await.expect("put");
        store
            .record_key_use(vec![("k1".into(), 42)])
            .await
            .expect("used");

        let config = store.load_config().await.expect("loaded");
        assert_eq!(config.advertisers, vec![advertiser]);
        assert_eq!(config.keys, vec![key]);
        assert_eq!(
            store.read_key_use().await.expect("read").get("k1"),
            Some(&42)
        );

        assert!(store.delete_api_key("k1").await.expect("deleted"));
        assert!(!store.delete_api_key("k1").await.expect("deleted"));
        assert!(store.load_config().await.expect("loaded").keys.is_empty());
        assert!(store.read_key_use().await.expect("read").is_empty());
        assert!(store.config_version().await.expect("version") > before + 2);
    }
);

conformance!(
    the_audit_log_pages_newest_first_and_keeps_only_what_its_retention_allows,
    |store: Arc<dyn Store>| async move {
        let retention = AuditRetention {
            keep: 4,
            max_age_secs: 60,
        };
        for (i, at_ms) in [0u64, 50_000, 50_000, 90_000, 90_000, 100_000]
            .into_iter()
            .enumerate()
        {
            let line = AuditLine {
                id: format!("e{i}"),
                at_ms,
                json: format!("{{\"n\":{i}}}"),
            };
            store.append_audit(&line, retention).await.expect("filed");
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.list_audit(2, after.as_ref()).await.expect("listed");
            seen.extend(page.entries);
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        // e0 is too old (more than 60 s before the newest), and only four are kept.
        assert_eq!(
            seen,
            vec![r#"{"n":5}"#, r#"{"n":4}"#, r#"{"n":3}"#, r#"{"n":2}"#]
        );
    }
);

/// The report counters of `dimension` (`None`: hours) on the UTC day of
/// `at`, as `(field, value)` sorted.
async fn report_fields(
    store: &dyn Store,
    at: u64,
    dimension: Option<Dimension>,
) -> Vec<(String, i128)> {
    let read = store
        .read_report_counters(&[Day::from_unix(at)], dimension)
        .await
        .expect("report counters read");
    let mut fields: Vec<(String, i128)> = read
        .into_iter()
        .flatten()
        .filter(|(_, n)| *n != 0)
        .collect();
    fields.sort();
    fields
}

conformance!(
    report_counters_follow_clicks_and_a_conversions_move_by_hour_and_value,
    |store: Arc<dyn Store>| async move {
        // Arrange: two clicks with sub1 "s1", one pending conversion.
        let at = now();
        let hh = format!("{:02}", at / 3600 % 24);
        let click = click_at(at);
        store.record_click(&click, 0).await.expect("recorded");
        store
            .record_click(&visitor_click("Bvisitor"), 0)
            .await
            .expect("recorded");
        let pending = command(&click, goal("reg"), ConversionStatus::Pending, "2");
        store.apply_conversion(&pending).await.expect("pending");

        // Act: the advertiser approves it.
        let approve = ConversionCommand {
            payout: None,
            revenue: None,
            ..command(&click, goal("reg"), ConversionStatus::Approved, "2")
        };
        store.apply_conversion(&approve).await.expect("approved");

        // Assert
        let f = |rest: &str| format!("{hh}|o1|a1|{rest}");
        assert_eq!(
            report_fields(store.as_ref(), at, Some(Dimension::Sub1)).await,
            vec![
                (f("clk|s1"), 2),
                (f("cv|s1"), 1),
                (f("py|s1"), 2_000_000),
                (f("rv|s1"), 10_000_000),
                (f("uclk|s1"), 2),
            ]
        );
        assert_eq!(
            report_fields(store.as_ref(), at, Some(Dimension::Goal)).await,
            vec![
                (f("cv|reg"), 1),
                (f("py|reg"), 2_000_000),
                (f("rv|reg"), 10_000_000),
            ]
        );
        assert_eq!(
            report_fields(store.as_ref(), at, None).await,
            vec![
                (f("clk"), 2),
                (f("cv"), 1),
                (f("py"), 2_000_000),
                (f("rv"), 10_000_000),
                (f("uclk"), 2),
            ]
        );
    }
);

/// Both stores, counting at most `n` values of a dimension per day.
fn stores_with_report_cap(n: usize) -> [Subject; 2] {
    let url = redis_server::shared_redis_url();
    let prefix = redis_server::random_prefix();
    let redis =
        redis_server::open_store(&url, Keys::new(prefix.clone()), 16, Duration::from_secs(2))
            .with_report_values_per_day(n);
    [
        Subject {
            store: Arc::new(redis),
            cleanup: Some((url, prefix)),
        },
        Subject {
            store: Arc::new(MemoryStore::new().with_report_values_per_day(n)),
            cleanup: None,
        },
    ]
}

#[tokio::test]
async fn past_the_daily_cap_both_stores_count_new_values_as_other_and_old_ones_as_themselves() {
    for subject in stores_with_report_cap(2) {
        // Arrange: "a" and "b" fill the day; "c" comes when it is full.
        let store = subject.store.as_ref();
        let at = now();
        let hh = format!("{:02}", at / 3600 % 24);
        for sub1 in ["a", "b", "c", "a", "", "c"] {
            let mut click = visitor_click("Cvisitor");
            click.subs[0] = sub1.into();
            store.record_click(&click, 0).await.expect("recorded");
            // One write per click, so that the order of values is the clicks'.
            store.flush_all().await.expect("flushed");
        }

        // Act
        let fields = report_fields(store, at, Some(Dimension::Sub1)).await;

        // Assert
        let clk = |value: &str, n| (format!("{hh}|o1|a1|clk|{value}"), n);
        let clicks: Vec<(String, i128)> = fields
            .into_iter()
            .filter(|(f, _)| f.contains("|clk|"))
            .collect();
        assert_eq!(
            clicks,
            vec![clk("", 1), clk("\0", 2), clk("a", 2), clk("b", 1)]
        );
    }
}
