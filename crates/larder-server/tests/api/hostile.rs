//! Hostile clients against a real `larder` process: connections that never finish their
//! headers, bodies that stall, more connections than it may hold, and a process with few
//! file descriptors under a flood of half-open connections, a large body to a URL of no
//! app. It must cut them off, refuse clearly, keep answering everyone else, and not spin. Timeouts are set short here so
//! the tests are quick; the defaults are in docs/configuration.md.

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::processes::{Larder, free_port, larder, wait_until_up};
use crate::support::{OPERATOR, TestApp};
use crate::webhooks::hook;

const ALL: [&str; 4] = ["product-12", "product-7", "bump-7", "upsell-3"];

async fn start(envs: &[(&str, String)], prefix: &[&str]) -> Larder {
    let dir = larder_testkit::fresh_sqlite_path()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut all = vec![
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
        ("LARDER_PUBLIC_URL", "https://larder.test".to_owned()),
        ("LARDER_HEADER_TIMEOUT", "1s".to_owned()),
        ("LARDER_BODY_TIMEOUT", "2s".to_owned()),
        ("LARDER_IDLE_TIMEOUT", "5s".to_owned()),
    ];
    all.extend_from_slice(envs);
    let (cmd, base) = larder(&all, &dir);
    let mut cmd = if prefix.is_empty() {
        cmd
    } else {
        // Run it under another program (prlimit), with the same environment and directory.
        let mut wrapped = std::process::Command::new(prefix[0]);
        wrapped
            .args(&prefix[1..])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .current_dir(&dir)
            .env_clear();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                wrapped.env(k, v);
            }
        }
        wrapped
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn larder");
    let mut l = Larder { child, base };
    wait_until_up(&mut l).await;
    l
}

fn addr(l: &Larder) -> String {
    l.base.trim_start_matches("http://").to_owned()
}

/// Whether the server closed `stream` (EOF or reset) within `within`; what it said first.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&said).into_owned()),
            Ok(Ok(n)) => said.extend_from_slice(&buf[..n]),
        }
    }
}

/// `/healthz` on a fresh connection: the status, and how long it took.
async fn health(base: &str) -> (Option<StatusCode>, Duration) {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let status = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .ok()
        .map(|r| r.status());
    (status, started.elapsed())
}

/// CPU seconds (user and system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which may hold spaces) close with `)`.
    let rest = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test]
async fn slow_headers_and_stalled_bodies_are_cut_off_while_others_are_served() {
    let mut l = start(&[], &[]).await;
    let t = TestApp::at(&l.base);
    let h = hook(&t, &ALL, None).await;
    let path = h.url.trim_start_matches(&l.base).to_owned();
    // 40 connections that never finish their headers, 40 that promise 1 MiB − 1 to an
    // enabled URL and stall, 20 that send nothing at all.
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(addr(&l)).await.unwrap();
        s.write_all(format!("POST {path} HTTP/1.1\r\nHost: x\r\nX-Slow: ").as_bytes())
            .await
            .unwrap();
        slow.push(s);
    }
    let mut stalled = Vec::new();
    let opened = Instant::now();
    for _ in 0..40 {
        let mut s = TcpStream::connect(addr(&l)).await.unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{{\"event\": \"",
                1024 * 1024 - 1
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        stalled.push(s);
    }
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr(&l)).await.unwrap());
    }
    // Everyone else is served meanwhile.
    let (status, took) = health(&l.base).await;
    assert_eq!(status, Some(StatusCode::OK));
    assert!(took < Duration::from_secs(2), "/healthz took {took:?}");
    // The header timeout (1 s) closes the first and the last kind; the body timeout (2 s)
    // the second, after a 400 saying the body did not arrive.
    for s in slow.iter_mut().chain(silent.iter_mut()) {
        assert!(
            closed_within(s, Duration::from_secs(4)).await.is_some(),
            "a connection outlived the header timeout"
        );
    }
    // (Within 4 s of the start: the body timeout, 2 s, did it.)
    for s in &mut stalled {
        let left = Duration::from_secs(4).saturating_sub(opened.elapsed());
        let said = closed_within(s, left)
            .await
            .expect("a stalled body outlived the body timeout");
        assert!(said.starts_with("HTTP/1.1 400"), "{said}");
    }
    let (status, _) = health(&l.base).await;
    assert_eq!(status, Some(StatusCode::OK));
    let _ = l.child.kill();
}

#[tokio::test]
async fn an_unknown_webhook_token_is_refused_before_its_body_is_read() {
    let mut l = start(&[], &[]).await;
    // Headers promising 1 MiB − 1 to a URL that belongs to no app, and a few bytes of it.
    let mut s = TcpStream::connect(addr(&l)).await.unwrap();
    s.write_all(
        format!(
            "POST /webhooks/thrivecart/{} HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"event\": \"",
            "A".repeat(43),
            1024 * 1024 - 1
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The 404 comes at once, not after the rest of the body or the body timeout (2 s).
    let started = Instant::now();
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    while !said.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
            .await
            .expect("no answer within a second")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        said.extend_from_slice(&buf[..n]);
    }
    let said = String::from_utf8_lossy(&said);
    assert!(said.starts_with("HTTP/1.1 404"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let _ = l.child.kill();
}

/// The HTTP/2 connection preface and an empty SETTINGS frame (h2c, prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// The preface with a SETTINGS frame that opens no stream window at all
/// (`SETTINGS_INITIAL_WINDOW_SIZE` 0): the server may send headers, never a body.
const H2_PREFACE_NO_WINDOW: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00";

/// `GET path` on stream 1, its headers HPACK-encoded from the static table.
fn h2_get(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x44, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x41, 1, b'x']);
    let mut frame = vec![0, 0, block.len() as u8, 0x1, 0x5, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    frame
}

/// What an HTTP/2 client saw on a connection it kept answering (settings and pings
/// acknowledged, as real clients do) until the server closed it or `within` passed.
#[derive(Debug, Default)]
struct H2Seen {
    pings: usize,
    answered_at: Option<Instant>,
    closed_at: Option<Instant>,
}

async fn h2_answer_until_closed(s: &mut TcpStream, within: Duration) -> H2Seen {
    let mut seen = H2Seen::default();
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut head = [0u8; 9];
        match tokio::time::timeout(left, s.read_exact(&mut head)).await {
            Err(_) => return seen,
            Ok(Err(_)) => {
                seen.closed_at = Some(Instant::now());
                return seen;
            }
            Ok(Ok(_)) => {}
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags, stream) = (head[3], head[4], head[8]);
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).await.is_err() {
            seen.closed_at = Some(Instant::now());
            return seen;
        }
        let ack: Option<Vec<u8>> = match (kind, flags & 0x1) {
            (0x4, 0) => Some(vec![0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]),
            (0x6, 0) => {
                seen.pings += 1;
                let mut pong = vec![0, 0, 8, 0x6, 0x1, 0, 0, 0, 0];
                pong.extend_from_slice(&payload);
                Some(pong)
            }
            _ => None,
        };
        if kind == 0x1 && stream == 1 {
            seen.answered_at = Some(Instant::now());
        }
        if let Some(ack) = ack
            && s.write_all(&ack).await.is_err()
        {
            seen.closed_at = Some(Instant::now());
            return seen;
        }
    }
}

#[tokio::test]
async fn idle_http2_connections_are_closed_though_they_answer_pings() {
    // Header timeout 1 s, idle timeout 5 s (so pings every 1.7 s).
    let mut l = start(&[], &[]).await;

    // A connection that never starts a request goes after the header timeout.
    let mut never = TcpStream::connect(addr(&l)).await.unwrap();
    never.write_all(H2_PREFACE).await.unwrap();
    let opened = Instant::now();
    let seen = h2_answer_until_closed(&mut never, Duration::from_secs(4)).await;
    let closed = seen
        .closed_at
        .expect("a connection without a request stayed open");
    assert!(closed - opened < Duration::from_secs(3), "{seen:?}");

    // A trickled preface, a byte at a time, is no request either.
    let mut trickle = TcpStream::connect(addr(&l)).await.unwrap();
    let opened = Instant::now();
    let mut cut = false;
    for byte in H2_PREFACE.iter().take(24) {
        if trickle.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    if !cut {
        cut = closed_within(&mut trickle, Duration::from_millis(200))
            .await
            .is_some();
    }
    assert!(cut, "a trickled preface kept its connection");
    assert!(opened.elapsed() < Duration::from_secs(5));

    // One answered request, then nothing but pings (answered): closed after the idle timeout.
    let mut once = TcpStream::connect(addr(&l)).await.unwrap();
    once.write_all(H2_PREFACE).await.unwrap();
    once.write_all(&h2_get("/healthz")).await.unwrap();
    let seen = h2_answer_until_closed(&mut once, Duration::from_secs(12)).await;
    let answered = seen.answered_at.expect("the request was answered");
    let closed = seen.closed_at.expect("an idle connection stayed open");
    assert!(seen.pings >= 1, "no keep-alive ping came: {seen:?}");
    let idle = closed - answered;
    assert!(
        idle >= Duration::from_secs(4) && idle < Duration::from_secs(8),
        "closed {idle:?} after its answer: {seen:?}"
    );
    let _ = l.child.kill();
}

#[tokio::test]
async fn an_http2_answer_its_client_never_takes_is_given_up() {
    // Idle timeout 5 s. The client answers every ping, but opens no window for the answer's
    // body: the answer never moves, and the connection goes.
    let mut l = start(&[], &[]).await;
    let mut s = TcpStream::connect(addr(&l)).await.unwrap();
    s.write_all(H2_PREFACE_NO_WINDOW).await.unwrap();
    s.write_all(&h2_get("/openapi.json")).await.unwrap();
    let seen = h2_answer_until_closed(&mut s, Duration::from_secs(12)).await;
    let answered = seen.answered_at.expect("the answer's headers came");
    let closed = seen
        .closed_at
        .expect("a stalled answer kept its connection");
    assert!(seen.pings >= 1, "no keep-alive ping came: {seen:?}");
    let stalled = closed - answered;
    assert!(
        stalled >= Duration::from_secs(4) && stalled < Duration::from_secs(8),
        "closed {stalled:?} after its headers: {seen:?}"
    );
    let (status, _) = health(&l.base).await;
    assert_eq!(status, Some(StatusCode::OK));
    let _ = l.child.kill();
}

#[tokio::test]
async fn a_client_that_reads_no_answer_is_cut_off_after_the_idle_timeout() {
    let mut l = start(&[], &[]).await;
    // 40 pipelined requests for the OpenAPI document (about 250 KB each, far more than the
    // socket buffers hold), and not a byte read.
    let mut s = TcpStream::connect(addr(&l)).await.unwrap();
    let asks = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(40);
    s.write_all(asks.as_bytes()).await.unwrap();
    // The idle timeout (5 s) passes with the server unable to write; then it gives up, and
    // what the client reads afterwards ends well short of 40 answers.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the connection stayed open after {got} bytes"),
        }
    }
    let document = std::fs::metadata(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../openapi/larder.json"
    ))
    .unwrap()
    .len() as usize;
    assert!(
        got < 40 * document,
        "{got} bytes read: the client was waited for"
    );
    let (status, _) = health(&l.base).await;
    assert_eq!(status, Some(StatusCode::OK));
    let _ = l.child.kill();
}

#[tokio::test]
async fn beyond_the_connection_cap_connections_are_refused_clearly() {
    // A header timeout long enough that the held connections are surely still held when
    // the extra one comes, however loaded the machine.
    let mut l = start(
        &[
            ("LARDER_MAX_CONNECTIONS", "20".to_owned()),
            ("LARDER_HEADER_TIMEOUT", "4s".to_owned()),
        ],
        &[],
    )
    .await;
    // The start-up check's connection is gone by now: the 20 below are all there is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr(&l)).await.unwrap();
        // Started requests, so only the header timeout ends them.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr(&l)).await.unwrap();
    let said = closed_within(&mut extra, Duration::from_secs(2))
        .await
        .expect("the refused connection is closed");
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.contains("retry-after: 1"), "{said}");
    assert!(said.contains("\"code\":\"unavailable\""), "{said}");
    // Once the held ones time out, there is room again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while health(&l.base).await.0 != Some(StatusCode::OK) {
        assert!(
            Instant::now() < deadline,
            "no room after the held ones timed out"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(held);
    let _ = l.child.kill();
}

#[tokio::test]
async fn with_few_file_descriptors_a_flood_of_half_open_connections_passes() {
    // 256 files, as a small container may give: the cap (48) stays under it.
    let mut l = start(&[], &["prlimit", "--nofile=256:256", "--"]).await;
    let pid = l.child.id();
    let mut flood = Vec::new();
    for _ in 0..300 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr(&l))).await
        {
            flood.push(s);
        }
    }
    let before = cpu_seconds(pid);
    let started = Instant::now();
    // Within the header timeout and a little, the half-open ones are gone and /healthz
    // answers again.
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(6) {
        if let (Some(StatusCode::OK), _) = health(&l.base).await {
            answered = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered.is_some(),
        "/healthz never answered under the flood"
    );
    // And nothing spun meanwhile: far less than a core.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds(pid) - before;
    let wall = started.elapsed().as_secs_f64();
    assert!(used < 0.5 * wall, "{used:.2} s of CPU in {wall:.2} s");
    drop(flood);
    let _ = l.child.kill();
}

#[tokio::test]
async fn metrics_are_served_without_a_token_on_their_own_listener_only() {
    let port = free_port();
    let mut l = start(
        &[("LARDER_METRICS_LISTEN", format!("127.0.0.1:{port}"))],
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let own = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert!(
        own.text()
            .await
            .unwrap()
            .contains("larder_http_requests_total")
    );
    let nothing_else = client
        .get(format!("http://127.0.0.1:{port}/admin/v1/apps"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert_eq!(nothing_else.status(), StatusCode::NOT_FOUND);
    let public = client
        .get(format!("{}/metrics", l.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::UNAUTHORIZED);
    let _ = l.child.kill();
}
