//! Background work: period-end revocations when they fall due, pruning the activity log
//! past its retention, and dropping expired sessions and spent invitations. Both are idempotent statements on the store, so several Larder
//! processes may run them at once, and a restart just picks up what is due.

use std::sync::Arc;
use std::time::Duration;

use larder_store::Store;
use tokio::task::JoinHandle;

/// How often due revocations are looked for.
const REVOKE_EVERY: Duration = Duration::from_secs(30);
/// How often old activity is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Aborts its tasks when dropped.
#[derive(Debug)]
pub struct Background(Vec<JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

pub fn spawn(store: Arc<dyn Store>, retention: Duration) -> Background {
    let revoker = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REVOKE_EVERY);
            loop {
                tick.tick().await;
                match store.revoke_due_items(chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(grants = n, "period-end cancellations revoked"),
                    Err(err) => tracing::warn!(error = %err, "could not revoke due items"),
                }
            }
        })
    };
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let Ok(retention) = chrono::Duration::from_std(retention) else {
                return;
            };
            let before = chrono::Utc::now() - retention;
            match store.prune_deliveries(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "old activity pruned"),
                Err(err) => tracing::warn!(error = %err, "could not prune activity"),
            }
            match store.prune_sign_ins(chrono::Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "expired sessions and invitations pruned"),
                Err(err) => tracing::warn!(error = %err, "could not prune sessions"),
            }
        }
    });
    Background(vec![revoker, pruner])
}
