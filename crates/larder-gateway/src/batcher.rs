//! Group commit: deliveries that arrive together go to the store together.
//!
//! Each request hands its job to a [`Batcher`] and waits for its own answer, which it gets
//! only after the batch holding it is committed. The batcher runs at most `in_flight`
//! batches at a time; whatever arrives while they run waits in the queue and forms the next
//! batch (up to `max_batch`), taken as soon as one finishes. So an idle service adds no
//! delay (a lone delivery is a batch of one, sent at once), and the busier the store, the
//! larger the batches: batching costs no timer and no wait of its own.
//!
//! A batch runs in a span of its own (`<name>`, with `larder.batch.size`) that follows from
//! the span of every job in it, so a trace leads from a delivery to the batch that wrote it.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;

/// A job, where its answer goes, and the span it was submitted from.
type Waiting<J, R> = (J, oneshot::Sender<R>, tracing::Span);

/// Hands jobs to `run` in batches. The batches stop when it is dropped (those under way
/// finish and answer).
pub(crate) struct Batcher<J, R> {
    jobs: mpsc::UnboundedSender<Waiting<J, R>>,
}

impl<J, R> std::fmt::Debug for Batcher<J, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<J: Send + 'static, R: Send + 'static> Batcher<J, R> {
    /// Starts the batcher on the current runtime. `run` answers a batch with one result per
    /// job, in order.
    pub(crate) fn start<F, Fut>(
        name: &'static str,
        max_batch: usize,
        in_flight: usize,
        run: F,
    ) -> Self
    where
        F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Waiting<J, R>>();
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        let run = Arc::new(run);
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let Some(first) = queue.recv().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                // A job whose waiter is gone (it gave up waiting: see `submit`) is not run.
                batch.retain(|(_, waiter, _)| !waiter.is_closed());
                if batch.is_empty() {
                    continue;
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let span = tracing::info_span!(
                        "batch",
                        otel.name = name,
                        larder.batch.size = batch.len()
                    );
                    let mut jobs = Vec::with_capacity(batch.len());
                    let mut waiters = Vec::with_capacity(batch.len());
                    for (job, waiter, from) in batch {
                        span.follows_from(&from);
                        jobs.push(job);
                        waiters.push(waiter);
                    }
                    let results = run(jobs).instrument(span).await;
                    drop(slot);
                    debug_assert_eq!(results.len(), waiters.len());
                    for (waiter, result) in waiters.into_iter().zip(results) {
                        // A waiter that went away (its client hung up) needs no answer.
                        let _ = waiter.send(result);
                    }
                });
            }
        });
        Self { jobs }
    }

    /// Queues `job` and waits for its result; `None` when it got none (the batch panicked,
    /// or the batcher is gone) or not within `patience`. A job given up on before its batch
    /// starts is never run; one given up on later may still be (the store's own rules make
    /// that safe: a retry of it is a duplicate).
    pub(crate) async fn submit(&self, job: J, patience: std::time::Duration) -> Option<R> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send((job, answer, tracing::Span::current()))
            .ok()?;
        tokio::time::timeout(patience, answered).await.ok()?.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn jobs_that_arrive_while_a_batch_runs_go_together() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Arc::new(Batcher::start("test.batch", 8, 1, move |jobs: Vec<u32>| {
            seen.lock().expect("not poisoned").push(jobs.len());
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                jobs.into_iter().map(|j| j * 10).collect::<Vec<_>>()
            }
        }));
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.submit(1, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Twelve more arrive while the first runs alone: a batch of eight, then four.
        let rest: Vec<_> = (2..=13)
            .map(|j| {
                let b = batcher.clone();
                tokio::spawn(async move { b.submit(j, Duration::from_secs(5)).await })
            })
            .collect();
        assert_eq!(first.await.expect("joined"), Some(10));
        for (j, handle) in (2..=13).zip(rest) {
            assert_eq!(
                handle.await.expect("joined"),
                Some(j * 10),
                "each gets its own answer"
            );
        }
        assert_eq!(*sizes.lock().expect("not poisoned"), vec![1, 8, 4]);
    }

    #[tokio::test]
    async fn a_batch_that_panics_answers_none_and_the_next_goes_on() {
        let batcher = Batcher::start("test.batch", 4, 1, |jobs: Vec<u32>| async move {
            assert!(!jobs.contains(&0), "a bad batch");
            jobs
        });
        assert_eq!(batcher.submit(0, Duration::from_secs(5)).await, None);
        assert_eq!(batcher.submit(7, Duration::from_secs(5)).await, Some(7));
    }

    #[tokio::test]
    async fn a_job_given_up_on_while_queued_is_not_run() {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let seen = ran.clone();
        let batcher = Arc::new(Batcher::start("test.batch", 8, 1, move |jobs: Vec<u32>| {
            seen.lock()
                .expect("not poisoned")
                .extend(jobs.iter().copied());
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                jobs
            }
        }));
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.submit(1, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Queued behind the first batch, and given up on before it ends.
        assert_eq!(batcher.submit(2, Duration::from_millis(20)).await, None);
        assert_eq!(first.await.expect("joined"), Some(1));
        assert_eq!(batcher.submit(3, Duration::from_secs(5)).await, Some(3));
        assert_eq!(*ran.lock().expect("not poisoned"), vec![1, 3]);
    }
}
