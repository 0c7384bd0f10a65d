//! The HTTP server: Larder's own accept loop and connections (hyper, with poem's endpoint
//! inside), so that every limit a service on the open internet needs is set and enforced:
//!
//! - a cap on open connections; beyond it a new connection gets a short `503` with
//!   `Retry-After` and is closed, and beyond a second, small allowance it is closed at once;
//! - a header timeout: a request's headers must arrive within it (and a connection that
//!   sends nothing at all is closed after it), which also ends idle keep-alive connections;
//! - a body timeout: a request's body must arrive within it;
//! - an idle timeout: a connection on which nothing is read or written for that long is
//!   closed, whatever it is waiting for (a client that never reads its answer, say);
//! - HTTP/2 limits on concurrent and reset streams, and keep-alive pings;
//! - accept errors (out of file descriptors) that back off instead of spinning.
//!
//! On shutdown it stops accepting, lets every connection finish the requests it has read
//! (answering them), and closes what is still open when the grace is up.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use poem::endpoint::BoxEndpoint;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Body, Endpoint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

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
/// (its soft `RLIMIT_NOFILE`, less a margin for the database, Redis and logs), so the cap
/// is reached before the file descriptors run out.
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
        Some(n) => n.saturating_sub(64).clamp(16, 1024),
        None => 1024,
    }
}

/// When a connection was last read from or written to, and whether it sent anything yet.
#[derive(Debug)]
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    read_any: AtomicBool,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed();
        now.saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A socket that records its activity.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_any.store(true, Ordering::Relaxed);
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Resolves when a connection should be closed: nothing received within the header
/// timeout of its start, or nothing read or written for the idle timeout.
async fn watchdog(activity: Arc<Activity>, limits: Limits) -> &'static str {
    loop {
        let silent = !activity.read_any.load(Ordering::Relaxed);
        if silent && activity.started.elapsed() >= limits.header_timeout {
            return "sent nothing within the header timeout";
        }
        let idle = activity.idle_for();
        if idle >= limits.idle_timeout {
            return "idle for the idle timeout";
        }
        let next = if silent {
            limits
                .header_timeout
                .saturating_sub(activity.started.elapsed())
        } else {
            limits.idle_timeout.saturating_sub(idle)
        };
        tokio::time::sleep(next.max(Duration::from_millis(50))).await;
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
    let refusing = Arc::new(Semaphore::new(REFUSING));
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
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
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
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refuse(stream, &refusing);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            read_any: AtomicBool::new(false),
        });
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let endpoint = endpoint.clone();
        let local_addr = LocalAddr(poem::Addr::SocketAddr(local));
        let remote_addr = RemoteAddr(poem::Addr::SocketAddr(remote));
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
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
                let resp = endpoint.get_response(req).await;
                Ok::<_, Infallible>(hyper::Response::from(resp))
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
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
            stream.shutdown().await
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
