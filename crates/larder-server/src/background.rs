//! Background work: period-end revocations when they fall due, pruning the activity log
//! past its retention, and dropping expired sessions and spent invitations. Both are idempotent statements on the store, so several Larder
//! processes may run them at once, and a restart just picks up what is due.

use std::sync::Arc;
use std::time::Duration;

use larder_metrics::Metrics;
use larder_store::{Store, StoreResult};
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

/// The jobs, as `larder_background_job_*{job}` names them.
const REVOKE_JOB: &str = "revoke_due_items";
const PRUNE_ACTIVITY_JOB: &str = "prune_activity";
const PRUNE_SIGN_INS_JOB: &str = "prune_sign_ins";

/// Counts one run of `job` and logs what it did.
fn finished(metrics: &Metrics, job: &'static str, result: StoreResult<u64>, what: &str) {
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    match result {
        Ok(n) => {
            metrics.job(job, true, now);
            if n > 0 {
                tracing::info!(job, rows = n, "{what}");
            }
        }
        Err(err) => {
            metrics.job(job, false, now);
            tracing::warn!(job, error = %err, "background job failed");
        }
    }
}

pub fn spawn(
    store: Arc<dyn Store>,
    metrics: Metrics,
    retention: Duration,
    sender: larder_mail::Sender,
) -> Background {
    let revoker = {
        let store = store.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REVOKE_EVERY);
            loop {
                tick.tick().await;
                let result = store.revoke_due_items(chrono::Utc::now()).await;
                finished(
                    &metrics,
                    REVOKE_JOB,
                    result,
                    "period-end cancellations revoked",
                );
            }
        })
    };
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let before = chrono::Utc::now()
                .checked_sub_signed(retention)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            let result = store.prune_deliveries(before).await;
            finished(&metrics, PRUNE_ACTIVITY_JOB, result, "old activity pruned");
            let result = store.prune_sign_ins(chrono::Utc::now()).await;
            finished(
                &metrics,
                PRUNE_SIGN_INS_JOB,
                result,
                "expired sessions and invitations pruned",
            );
        }
    });
    Background(vec![revoker, pruner, sender.spawn()])
}
