//! Starting the real `clickback` binary: command line, configuration errors,
//! the Redis it tries, and the configuration refresher on an empty store.

use clickback::domain::offer::OfferInput;
use clickback::domain::{Offer, OfferId};
use clickback::offers::ConfigCache;
use clickback::store::{MemoryStore, Store};

#[tokio::test]
async fn refreshing_an_empty_store_reports_no_change() {
    // Arrange: an empty store, loaded once as at start.
    let store = MemoryStore::new();
    let cache = ConfigCache::new();
    cache.reload(&store).await.expect("load the empty store");

    // Act
    let first = cache.refresh_if_changed(&store).await.expect("refresh");
    let second = cache.refresh_if_changed(&store).await.expect("refresh");

    // Assert
    assert!(!first, "an unchanged empty store was reported as changed");
    assert!(!second, "an unchanged empty store was reported as changed");
}

#[tokio::test]
async fn refreshing_after_the_first_offer_reports_one_change() {
    // Arrange
    let store = MemoryStore::new();
    let cache = ConfigCache::new();
    cache.reload(&store).await.expect("load the empty store");
    let input: OfferInput = serde_json::from_str(
        r#"{"url":"https://shop.example/?a=1","payout":"2.5","postback_token":"tok-12345"}"#,
    )
    .expect("offer input");
    let offer = Offer::from_input(OfferId::parse("first").expect("id"), input).expect("offer");
    store.put_offer(&offer).await.expect("stored");

    // Act
    let first = cache.refresh_if_changed(&store).await.expect("refresh");
    let second = cache.refresh_if_changed(&store).await.expect("refresh");

    // Assert
    assert!(first, "the new offer was not picked up");
    assert!(
        cache.offer("first").is_some(),
        "the new offer is not cached"
    );
    assert!(!second, "nothing moved, yet a change was reported");
}
