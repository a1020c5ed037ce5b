//! Claims a postback takes in the store, held by a guard so that every one
//! of them is given back when the postback fails.
//!
//! Two kinds: a signed postback claims its signature (a second use is a
//! replay), kept once the postback succeeds and given back when it fails, so
//! that the advertiser's retry of a postback that hit a 503 is not refused
//! as `replayed`; and a postback deciding a new capped conversion claims that
//! conversion's identity for the time of its decision, always given back
//! once the decision is written (or failed).
//!
//! The pipeline gives claims back itself, awaiting each release; if the
//! request is dropped midway (the advertiser hung up), [`Claims`]' `Drop`
//! gives back what is left in a task of its own. A release that fails only
//! means the claim lasts until its TTL.

use std::sync::Arc;

use crate::store::{Store, StoreError};

/// What a claim is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimKind {
    /// A postback signature: kept after success, given back after failure.
    Signature,
    /// A new capped conversion being decided: given back once decided.
    Decision,
}

/// The claims one postback holds.
pub struct Claims {
    store: Arc<dyn Store>,
    held: Vec<(String, ClaimKind)>,
}

impl Claims {
    /// Holds nothing yet.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            held: Vec::new(),
        }
    }

    /// Claims `token` for `ttl_secs`; `false` when someone else holds it.
    pub async fn take(
        &mut self,
        token: String,
        ttl_secs: u64,
        kind: ClaimKind,
    ) -> Result<bool, StoreError> {
        let fresh = self.store.claim(&token, ttl_secs).await?;
        if fresh {
            self.held.push((token, kind));
        }
        Ok(fresh)
    }

    /// Whether a claim of this kind is held.
    pub fn holds(&self, kind: ClaimKind) -> bool {
        self.held.iter().any(|(_, k)| *k == kind)
    }

    /// Gives back the claims of one kind.
    pub async fn release(&mut self, kind: ClaimKind) {
        let (release, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, k)| *k == kind);
        self.held = keep;
        give_back(self.store.as_ref(), release).await;
    }

    /// Gives back every claim: the postback failed.
    pub async fn release_all(&mut self) {
        give_back(self.store.as_ref(), std::mem::take(&mut self.held)).await;
    }

    /// The postback succeeded: decisions are given back, signatures stay
    /// claimed until their TTL (a second use is a replay).
    pub async fn settle(&mut self) {
        self.release(ClaimKind::Decision).await;
        self.held.clear();
    }
}

impl Drop for Claims {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let store = Arc::clone(&self.store);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { give_back(store.as_ref(), held).await });
        }
    }
}

/// Releases `claims` one by one; a failed release only means the claim
/// lasts until its TTL.
async fn give_back(store: &dyn Store, claims: Vec<(String, ClaimKind)>) {
    for (token, _) in claims {
        let _ = store.release_claim(&token).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_failed_postback_gives_back_every_claim() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut claims = Claims::new(Arc::clone(&store));
        assert!(claims
            .take("sig".into(), 60, ClaimKind::Signature)
            .await
            .expect("claim"));
        claims.release_all().await;
        assert!(store.claim("sig", 60).await.expect("claim"));
    }

    #[tokio::test]
    async fn a_settled_postback_keeps_its_signature_and_frees_its_decision() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut claims = Claims::new(Arc::clone(&store));
        for (token, kind) in [("sig", ClaimKind::Signature), ("dec", ClaimKind::Decision)] {
            assert!(claims.take(token.into(), 60, kind).await.expect("claim"));
        }
        claims.settle().await;
        drop(claims);
        assert!(!store.claim("sig", 60).await.expect("claim"));
        assert!(store.claim("dec", 60).await.expect("claim"));
    }

    #[tokio::test]
    async fn claims_dropped_midway_are_given_back() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut claims = Claims::new(Arc::clone(&store));
        assert!(claims
            .take("sig".into(), 60, ClaimKind::Signature)
            .await
            .expect("claim"));
        drop(claims);
        let mut freed = false;
        for _ in 0..100 {
            tokio::task::yield_now().await;
            if store.claim("sig", 60).await.expect("claim") {
                freed = true;
                break;
            }
        }
        assert!(freed, "the dropped claim was never given back");
    }
}
