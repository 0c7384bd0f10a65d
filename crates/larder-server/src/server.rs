//! The HTTP server: Larder's own accept loop and connections (hyper, with poem's endpoint
//! inside), so that every limit a service on the open internet needs is set and enforced:
//!
//! - a cap on open connections; beyond it a new connection gets a short `503` with
//!   `Retry-After` and is closed, and beyond a second, small allowance it is closed at once;
//! - a header timeout: a request's headers must arrive within it, and a connection must
//!   start its first request within it (whatever it sends meanwhile: a trickled HTTP/2
//!   preface, pings); hyper also closes an HTTP/1.1 connection that waits longer than it
//!   between requests;
//! - a body timeout: a request's body must arrive within it;
//! - an idle timeout, kept by requests rather than bytes: an HTTP/2 connection with no
//!   request for that long is closed (pings do not keep it), and so is any connection whose
//!   answer makes no progress for that long (a client that does not read it, an HTTP/2
//!   window never opened); a request the service is still working on is never cut off by
//!   it (its own deadlines bound it);
//! - HTTP/2 limits on concurrent and reset streams, and keep-alive pings;
//! - accept errors (out of file descriptors) that back off instead of spinning.
//!
//! On shutdown it stops accepting, lets every connection finish the requests it has read
//! (answering them), and closes the connections still open when the grace is up (a handler
//! already running on one finishes on its own, within its deadlines).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::endpoint::BoxEndpoint;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Body, Endpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What a connection and its requests may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub http2_max_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: default_max_connections(),
            http2_max_streams: 64,
        }
    }
}

/// Connections refused with an answer, at most, at once; beyond, refused ones are closed
/// without a word.
const REFUSING: usize = 64;
/// The cap on connections to the metrics listener (a scraper or two).
pub const METRICS_CONNECTIONS: usize = 16;
/// File descriptors kept apart from the connection cap: the database and Redis pools, logs,
/// refusals being written on both listeners, the metrics listener's connections.
const FD_MARGIN: usize = 64 + 2 * REFUSING + METRICS_CONNECTIONS;
/// How long a refusal may take to write.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);
/// The answer beyond the connection cap.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 93\r\n\
\r\n\
{\"code\":\"unavailable\",\"message\":\"The service is at its connection limit; retry in a moment.\"}";

/// The default cap on connections: 1024, or fewer when the process may open fewer files
/// (its soft `RLIMIT_NOFILE`, less [`FD_MARGIN`]), so the cap is reached before the file
/// descriptors run out.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        });
    match soft {
        Some(n) => n.saturating_sub(FD_MARGIN).clamp(16, 1024),
        None => 1024,
    }
}

/// What a connection's requests are doing, for its watchdog. Idleness is judged by
/// requests and answers, never by bytes: HTTP/2 pings (and their answers) keep nothing
/// alive. Times are milliseconds since `started`.
#[derive(Debug)]
struct Activity {
    started: Instant,
    /// When the last request ended: its answer written whole or given up, or its handler
    /// cancelled.
    last_end_ms: AtomicU64,
    /// When an answer last moved: one began, or a body handed hyper a frame.
    answer_moved_ms: AtomicU64,
    /// Whether a request has started on it.
    requested: AtomicBool,
    /// Requests whose handler is running (reading the body included).
    handling: AtomicUsize,
    /// Answers whose body hyper still holds.
    answering: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_end_ms: AtomicU64::new(0),
            answer_moved_ms: AtomicU64::new(0),
            requested: AtomicBool::new(false),
            handling: AtomicUsize::new(0),
            answering: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark(&self, at: &AtomicU64) {
        at.store(self.now_ms(), Ordering::Relaxed);
    }

    fn since(&self, ms: &AtomicU64) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(ms.load(Ordering::Relaxed)))
    }

    /// A request starts: its handler runs until the guard is dropped.
    fn handling(self: &Arc<Self>) -> Handling {
        self.requested.store(true, Ordering::Relaxed);
        self.handling.fetch_add(1, Ordering::AcqRel);
        Handling {
            activity: self.clone(),
            answered: false,
        }
    }

    /// Why the connection should be closed now, or how long until it may have to be.
    fn verdict(&self, limits: &Limits) -> Result<Duration, &'static str> {
        // The service's own work: bounded by its deadlines (the body timeout among them).
        if self.handling.load(Ordering::Acquire) > 0 {
            return Ok(limits.idle_timeout);
        }
        if self.answering.load(Ordering::Acquire) > 0 {
            // Its client takes no more of it (it does not read; an HTTP/2 window it never
            // opens), however busy it keeps the connection otherwise.
            let stalled = self.since(&self.answer_moved_ms);
            return match limits.idle_timeout.checked_sub(stalled) {
                Some(left) if !left.is_zero() => Ok(left),
                _ => Err("an answer made no progress for the idle timeout"),
            };
        }
        if !self.requested.load(Ordering::Relaxed) {
            let age = self.started.elapsed();
            return match limits.header_timeout.checked_sub(age) {
                Some(left) if !left.is_zero() => Ok(left),
                _ => Err("no request started within the header timeout"),
            };
        }
        let idle = self.since(&self.last_end_ms);
        match limits.idle_timeout.checked_sub(idle) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err("no request for the idle timeout"),
        }
    }
}

/// A request's handler at work. Dropped without an answer (its stream reset, say), the
/// request has ended all the same.
struct Handling {
    activity: Arc<Activity>,
    answered: bool,
}

impl Handling {
    /// The handler answered: its answer is being written until the guard is dropped.
    fn answering(mut self) -> Answering {
        // Counted as answering before it stops counting as handling (when `self` is
        // dropped, below): the watchdog never sees the request as neither.
        let activity = &self.activity;
        activity.answering.fetch_add(1, Ordering::AcqRel);
        activity.mark(&activity.answer_moved_ms);
        self.answered = true;
        Answering(self.activity.clone())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        if !self.answered {
            self.activity.mark(&self.activity.last_end_ms);
        }
        self.activity.handling.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer being written.
struct Answering(Arc<Activity>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.mark(&self.0.last_end_ms);
        self.0.answering.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body, which holds its [`Answering`] until hyper has taken it whole (or
/// given it up) and drops it; each frame it hands over is progress.
struct TrackedBody<B> {
    body: B,
    answering: Answering,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(Some(Ok(_)))) {
            let activity = &self.answering.0;
            activity.mark(&activity.answer_moved_ms);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Resolves when a connection should be closed (see [`Activity::verdict`]).
async fn watchdog(activity: Arc<Activity>, limits: Limits) -> &'static str {
    loop {
        match activity.verdict(&limits) {
            Ok(next) => tokio::time::sleep(next.max(Duration::from_millis(50))).await,
            Err(why) => return why,
        }
    }
}

/// A request's body, which must arrive whole by `deadline`.
fn timed_body(body: Body, deadline: tokio::time::Instant) -> Body {
    let stream = body.into_bytes_stream();
    let timed = futures::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                )),
                None,
            )),
        }
    });
    Body::from_bytes_stream(timed.map(|r: io::Result<Bytes>| r))
}

/// Serves `endpoint` on `listener` until `shutdown` resolves; then stops accepting, lets
/// open connections finish what they have read for at most `grace`, and returns.
pub async fn run(
    listener: TcpListener,
    endpoint: Arc<BoxEndpoint<'static>>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(REFUSING.min(limits.max_connections.max(1))));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_buf_size(256 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_pending_accept_reset_streams(Some(32))
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some((limits.idle_timeout / 3).min(Duration::from_secs(20))))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(5);
                pair
            }
            Err(err) => {
                // Out of file descriptors, say: wait for some to be freed rather than spin.
                tracing::warn!(error = %err, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refuse(stream, &refusing);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(stream);
        let endpoint = endpoint.clone();
        let local_addr = LocalAddr(poem::Addr::SocketAddr(local));
        let remote_addr = RemoteAddr(poem::Addr::SocketAddr(remote));
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let handling = requests.handling();
            let endpoint = endpoint.clone();
            let deadline = tokio::time::Instant::now() + limits.body_timeout;
            let mut req: poem::Request = (
                req,
                local_addr.clone(),
                remote_addr.clone(),
                http::uri::Scheme::HTTP,
            )
                .into();
            let body = req.take_body();
            req.set_body(timed_body(body, deadline));
            async move {
                let resp = hyper::Response::from(endpoint.get_response(req).await);
                let answering = handling.answering();
                Ok::<_, Infallible>(resp.map(|body| TrackedBody { body, answering }))
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tasks.spawn(async move {
            let conn = builder.serve_connection_with_upgrades(io, service);
            let conn = watcher.watch(conn);
            tokio::select! {
                result = conn => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                }
                why = watchdog(activity, limits) => {
                    tracing::debug!(why, "connection closed");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tasks.abort_all();
        tracing::warn!(
            grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "the shutdown grace ran out: connections still open were closed"
        );
    } else {
        tracing::info!("every request read was answered");
    }
    Ok(())
}

/// Tells a connection beyond the cap to come back, briefly, and closes it.
fn refuse(mut stream: TcpStream, refusing: &Arc<Semaphore>) {
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        // Too many at once to answer: closed without a word.
        return;
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_WRITE, async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            // Read what the client sent until it closes too: closing with its request
            // unread would reset the connection, and the client could lose the answer.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
        drop(permit);
    });
}

/// The address a listener serves, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_response() {
        let text = std::str::from_utf8(REFUSAL).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("a length");
        assert_eq!(length, body.len());
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }

    #[test]
    fn the_connection_cap_stays_under_the_file_limit() {
        let cap = default_max_connections();
        assert!((16..=1024).contains(&cap), "{cap}");
    }
}
