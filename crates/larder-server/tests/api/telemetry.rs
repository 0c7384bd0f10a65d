//! Traces, logs and shutdown of a real `larder` process: its OTLP export received and
//! decoded by a collector inside the test, its log output read line by line, its answer to
//! SIGTERM in the middle of a burst.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use poem::{EndpointExt, IntoResponse};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::mail::{link_to, outbox_messages};
use crate::members::{invite, set_password, sign_in};
use crate::processes::{Larder, larder, wait_until_up};
use crate::support::{OPERATOR, TestApp};

/// The W3C trace context a test's client sends.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const PASSWORD: &str = "tracing-test passphrase 4417";

/// An OTLP/HTTP collector on `127.0.0.1:0`: it decodes every export it receives.
struct Collector {
    endpoint: String,
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Collector {
    async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let route = poem::Route::new().at(
            "/v1/traces",
            poem::post(poem::endpoint::make(move |req: poem::Request| {
                let sink = sink.clone();
                async move {
                    assert_eq!(req.content_type(), Some("application/x-protobuf"));
                    let body = req.into_body().into_bytes().await?;
                    let export =
                        ExportTraceServiceRequest::decode(body).map_err(poem::error::BadRequest)?;
                    sink.lock().unwrap().push(export);
                    Ok::<_, poem::Error>(
                        Vec::<u8>::new()
                            .with_content_type("application/x-protobuf")
                            .into_response(),
                    )
                }
            }))
            .boxed(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                route,
                async {
                    let _ = rx.await;
                },
                None,
            ),
        );
        Self {
            endpoint,
            received,
            _stop: tx,
        }
    }

    fn spans(&self) -> Vec<Span> {
        let exports = self.received.lock().unwrap();
        let mut spans = Vec::new();
        for export in exports.iter() {
            for rs in &export.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        spans.push(Span {
                            name: s.name.clone(),
                            kind: s.kind,
                            trace_id: hex(&s.trace_id),
                            span_id: hex(&s.span_id),
                            parent: hex(&s.parent_span_id),
                            attributes: attributes(&s.attributes),
                            events: s
                                .events
                                .iter()
                                .map(|e| (e.name.clone(), attributes(&e.attributes)))
                                .collect(),
                            status: s.status.as_ref().map(|st| st.message.clone()),
                            resource: resource.clone(),
                            links: s.links.iter().map(|l| hex(&l.span_id)).collect(),
                        });
                    }
                }
            }
        }
        spans
    }
}

/// One exported span, decoded.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: Vec<(String, String)>,
    /// Log lines inside the span, as span events.
    events: Vec<(String, Vec<(String, String)>)>,
    status: Option<String>,
    resource: Vec<(String, String)>,
    /// The spans it follows from (a batch, from its deliveries').
    links: Vec<String>,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// Sends SIGTERM and waits for the exit; returns its status and how long it took.
async fn terminate(l: &mut Larder) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &l.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    loop {
        if let Some(status) = l.child.try_wait().expect("wait") {
            return (status, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "larder did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a flow used that must never appear in output.
#[derive(Debug, Default)]
struct Secrets(Vec<(&'static str, String)>);

/// The whole intake and admin flow through a real process: an app, its key, a level, the
/// integration with a secret word, a mapping, a purchase (with a `traceparent`), a repeat,
/// a rejected delivery and an undecodable one carrying the secret word, an invitation, a
/// password, a sign-in and the member's own view; a magic link and a password reset asked
/// for and used, and the member pages opened with link tokens in their URLs. Returns the
/// secrets it used and the purchase's activity entry. `outbox` is where the process writes
/// its messages.
async fn whole_flow(base: &str, outbox: &std::path::Path) -> (Secrets, String) {
    let t = TestApp::at(base);
    let c = t.configured_app("Observed").await;
    let token = c.webhook_url.rsplit('/').next().unwrap().to_owned();
    let webhook = c.webhook_url.replace("https://larder.test", base);

    // The purchase configured_app delivered, as a new order: product 7 is mapped.
    let mut purchase =
        larder_testkit::fixtures::thrivecart_json("12-order-success-repeat-customer-blank-name");
    purchase["order_id"] = "7700001".into();
    purchase["thrivecart_secret"] = "sesame".into();
    let traced = t
        .raw(
            t.client()
                .post(&webhook)
                .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
                .json(&purchase),
        )
        .await;
    assert_eq!(traced.status, StatusCode::OK, "{}", traced.body);
    let delivery = traced.str("delivery_id");
    let repeat = t.raw(t.client().post(&webhook).json(&purchase)).await;
    assert_eq!(repeat.body["status"], "duplicate", "{}", repeat.body);
    purchase["thrivecart_secret"] = "not-the-secret-word".into();
    let rejected = t.raw(t.client().post(&webhook).json(&purchase)).await;
    assert_eq!(
        rejected.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        rejected.body
    );
    let broken = t
        .raw(
            t.client()
                .post(&webhook)
                .header("content-type", "application/json")
                .body(r#"{"thrivecart_secret": "sesame", "event": "#),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{}", broken.body);

    let invitation = invite(&t, &c).await;
    let set = set_password(&t, &c.app, &invitation, PASSWORD).await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.body);
    let session = sign_in(&t, &c.app, "avery.quinn@example.com", PASSWORD).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let session = session.str("token");
    let me = t.get("/member/v1/me", &session).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let wrong = t
        .get("/admin/v1/apps", "lop_not-the-operator-token-at-all")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    // Links by email: asked for, opened on the member pages (tokens in the URL), used.
    for what in ["magic-links", "password-resets"] {
        let asked = t
            .raw(
                t.client()
                    .post(format!("{base}/member/v1/apps/{}/{what}", c.app))
                    .json(&json!({"email": "avery.quinn@example.com"})),
            )
            .await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    }
    // The welcome, the invitation's email, the magic link and the reset.
    let mails = outbox_messages(outbox, 4).await;
    let token_of = |page: &str| {
        let link = mails
            .iter()
            .find_map(|m| {
                let text = m["text"].as_str().unwrap();
                text.contains(&format!("/{page}?token="))
                    .then(|| link_to(text, page))
            })
            .unwrap();
        (
            link.clone(),
            link.split("token=").nth(1).unwrap().to_owned(),
        )
    };
    let (welcome_link, welcome_token) = token_of("set-password");
    let (magic_link, magic_token) = token_of("magic");
    let (reset_link, reset_token) = token_of("reset-password");
    for link in [&welcome_link, &magic_link, &reset_link] {
        let page = t
            .client()
            .get(link.replace("https://larder.test", base))
            .send()
            .await
            .unwrap();
        assert!(page.status().is_success() || page.status() == StatusCode::BAD_REQUEST);
    }
    let magic = t
        .raw(
            t.client()
                .post(format!(
                    "{base}/member/v1/apps/{}/magic-links/redeem",
                    c.app
                ))
                .json(&json!({"token": magic_token})),
        )
        .await;
    assert_eq!(magic.status, StatusCode::CREATED, "{}", magic.body);
    let new_password = "a reset passphrase 9921";
    let reset = t
        .raw(
            t.client()
                .post(format!(
                    "{base}/member/v1/apps/{}/password-resets/redeem",
                    c.app
                ))
                .json(&json!({"token": reset_token, "password": new_password})),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.body);

    let secrets = Secrets(vec![
        ("operator token", OPERATOR.to_owned()),
        ("API key", c.key.clone()),
        ("secret word", "sesame".to_owned()),
        ("webhook token", token),
        ("password", PASSWORD.to_owned()),
        ("invitation token", invitation),
        ("session token", session),
        ("welcome link token", welcome_token),
        ("magic link token", magic_token),
        ("magic link session", magic.str("token")),
        ("password-reset token", reset_token),
        ("new password", new_password.to_owned()),
    ]);
    (secrets, delivery)
}

fn assert_no_secret(output: &str, secrets: &Secrets, what: &str) {
    for (name, value) in &secrets.0 {
        assert!(
            !output.contains(value.as_str()),
            "the {name} appears in the {what}"
        );
    }
}

/// A process started on a fresh SQLite database in a directory of its own, with `envs`
/// and the operator token set, its output captured.
fn start(envs: &[(&str, String)]) -> (Larder, tempfile_dir::Dir) {
    let dir = tempfile_dir::Dir::new();
    let mut all = vec![
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
        ("LARDER_PUBLIC_URL", "https://larder.test".to_owned()),
    ];
    all.extend_from_slice(envs);
    let (mut cmd, base) = larder(&all, dir.path());
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn larder");
    (Larder { child, base }, dir)
}

/// A process with traces exported to `collector` and logs at `debug` in `format`.
fn spawn_observed(collector: &Collector, format: &str) -> (Larder, tempfile_dir::Dir) {
    start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test".to_owned(),
        ),
        ("LARDER_LOG_FORMAT", format.to_owned()),
        ("RUST_LOG", "debug".to_owned()),
    ])
}

/// Reads a child's pipes as it writes, so a full pipe never blocks it.
fn drain(l: &mut Larder) -> std::thread::JoinHandle<(String, String)> {
    let stdout = l.child.stdout.take().unwrap();
    let stderr = l.child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let out = std::io::read_to_string(stdout).unwrap_or_default();
        (out, err.join().unwrap_or_default())
    })
}

#[tokio::test]
async fn traces_reach_an_otlp_collector_with_routes_not_paths() {
    let collector = Collector::start().await;
    let (mut l, dir) = spawn_observed(&collector, "json");
    let output = drain(&mut l);
    wait_until_up(&mut l).await;
    let (secrets, delivery) = whole_flow(&l.base, &dir.path().join("data/outbox")).await;
    // Shutdown flushes what is queued: everything below arrives because of it.
    let (status, _) = terminate(&mut l).await;
    assert!(status.success(), "{status}");
    let (stdout, stderr) = output.join().unwrap();

    let spans = collector.spans();
    assert!(!spans.is_empty(), "nothing was exported");
    let all = format!("{spans:?}");
    assert_no_secret(&all, &secrets, "exported spans");
    assert!(
        !all.contains("/webhooks/thrivecart/whk_"),
        "a raw webhook path was exported"
    );

    // The purchase's server span continues the client's trace.
    let server = spans
        .iter()
        .find(|s| s.trace_id == TRACE_ID && s.parent == PARENT_SPAN_ID)
        .unwrap_or_else(|| panic!("no span continues the client's trace: {spans:#?}"));
    assert_eq!(server.name, "POST /webhooks/thrivecart/{token}");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.attr("http.request.method"), Some("POST"));
    assert_eq!(
        server.attr("http.route"),
        Some("/webhooks/thrivecart/{token}")
    );
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    // Its log line rides along as a span event (checked for secrets above, with the rest).
    assert!(
        server.events.iter().any(|(name, _)| name == "request"),
        "{:?}",
        server.events
    );
    assert!(server.status.as_deref().unwrap_or_default().is_empty());
    let resource = &server.resource;
    assert!(
        resource.contains(&("service.name".into(), "larder".into())),
        "{resource:?}"
    );
    assert!(
        resource.contains(&("deployment.environment.name".into(), "test".into())),
        "{resource:?}"
    );

    // Inside it: the token lookup, then the delivery, whose children are the cache and
    // store calls.
    let children = |parent: &Span| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.parent == parent.span_id && s.trace_id == parent.trace_id)
            .collect()
    };
    let under_server = children(server);
    assert!(
        under_server
            .iter()
            .any(|s| s.name == "cache.lookup" && s.attr("larder.cache") == Some("webhook_token")),
        "{under_server:#?}"
    );
    let intake = under_server
        .iter()
        .find(|s| s.name == "webhook.intake")
        .unwrap_or_else(|| panic!("no webhook.intake under the server span: {under_server:#?}"));
    assert_eq!(intake.attr("larder.delivery_id"), Some(delivery.as_str()));
    assert_eq!(intake.attr("thrivecart.event"), Some("order.success"));
    assert_eq!(intake.attr("larder.outcome"), Some("applied"));
    assert!(intake.attr("larder.app_id").is_some_and(|a| !a.is_empty()));
    let under_intake = children(intake);
    let names: Vec<(&str, Option<&str>)> = under_intake
        .iter()
        .map(|s| (s.name.as_str(), s.attr("larder.cache")))
        .collect();
    assert!(
        names.contains(&("cache.lookup", Some("idempotency"))),
        "{names:?}"
    );
    assert!(
        names.contains(&("cache.lookup", Some("mappings"))),
        "{names:?}"
    );
    let apply = under_intake
        .iter()
        .find(|s| s.name == "store.apply_delivery")
        .unwrap_or_else(|| panic!("no store call under the delivery: {names:?}"));
    assert_eq!(apply.kind, SpanKind::Client as i32);
    assert_eq!(apply.attr("db.system.name"), Some("sqlite"));
    // The batch that wrote it follows from it, and holds the store's own work.
    let batch = spans
        .iter()
        .find(|s| s.name == "store.apply_deliveries" && s.links.contains(&apply.span_id))
        .unwrap_or_else(|| panic!("no batch span follows from the delivery's"));
    assert!(
        batch
            .attr("larder.batch.size")
            .is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n >= 1)),
        "{batch:?}"
    );

    // Every other request has its own server span, named by its route.
    for name in [
        "POST /admin/v1/apps",
        "POST /admin/v1/apps/{app_id}/thrivecart/enable",
        "GET /member/v1/me",
    ] {
        assert!(spans.iter().any(|s| s.name == name), "no span `{name}`");
    }
    let rejected = spans
        .iter()
        .find(|s| s.name == "webhook.intake" && s.attr("larder.outcome") == Some("secret_mismatch"))
        .expect("the rejected delivery's span");
    assert_eq!(rejected.attr("thrivecart.event"), Some("order.success"));

    // The JSON log: one object per line from the first on; lines inside a request carry
    // its trace.
    let mut traced_lines = 0;
    for line in stdout.lines() {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
        assert!(
            parsed["timestamp"].is_string() && parsed["level"].is_string(),
            "{line}"
        );
        if parsed["trace_id"] == TRACE_ID {
            traced_lines += 1;
            assert!(
                parsed["span_id"].as_str().is_some_and(|s| s.len() == 16),
                "{line}"
            );
        }
    }
    assert!(
        traced_lines > 0,
        "no log line carries the client's trace id:\n{stdout}"
    );
    assert_no_secret(&stdout, &secrets, "JSON log");
    assert_no_secret(&stderr, &secrets, "standard error");
}

#[tokio::test]
async fn debug_logs_in_text_show_no_secret() {
    // No collector: text logs, no exporter at all.
    let (mut l, dir) = start(&[("RUST_LOG", "debug".to_owned())]);
    let output = drain(&mut l);
    wait_until_up(&mut l).await;
    let (secrets, _) = whole_flow(&l.base, &dir.path().join("data/outbox")).await;
    let (status, _) = terminate(&mut l).await;
    assert!(status.success(), "{status}");
    let (stdout, stderr) = output.join().unwrap();
    assert!(stdout.contains("DEBUG"), "debug logging was on:\n{stdout}");
    assert!(stdout.contains("webhook.intake"), "{stdout}");
    assert_no_secret(&stdout, &secrets, "text log");
    assert_no_secret(&stderr, &secrets, "standard error");
}

#[tokio::test]
async fn with_json_logs_a_generated_operator_token_is_never_shown() {
    let dir = tempfile_dir::Dir::new();
    let (mut cmd, base) = larder(&[("LARDER_LOG_FORMAT", "json".to_owned())], dir.path());
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn larder");
    let mut l = Larder { child, base };
    let output = drain(&mut l);
    wait_until_up(&mut l).await;
    let (status, _) = terminate(&mut l).await;
    assert!(status.success(), "{status}");
    let (stdout, stderr) = output.join().unwrap();
    for text in [&stdout, &stderr] {
        assert!(!text.contains("lop_"), "a token was shown:\n{text}");
    }
    assert!(stdout.contains("set LARDER_OPERATOR_TOKEN"), "{stdout}");
    for line in stdout.lines() {
        assert!(serde_json::from_str::<Value>(line).is_ok(), "{line}");
    }
}

#[tokio::test]
async fn a_collector_that_never_answers_slows_nothing() {
    // A collector that accepts connections and never answers: every export waits for its
    // timeout (5 s), on the exporter's thread, never on a request's.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", blackhole.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in blackhole.incoming().take(64) {
            open.push(stream);
        }
    });
    let (mut l, _dir) = start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "10".to_owned()),
        ("LARDER_SHUTDOWN_GRACE", "8s".to_owned()),
    ]);
    let output = drain(&mut l);
    wait_until_up(&mut l).await;
    let t = TestApp::at(&l.base);
    let mut slowest = Duration::ZERO;
    for n in 0..50 {
        let started = Instant::now();
        let a = t
            .post(
                "/admin/v1/apps",
                OPERATOR,
                json!({"name": format!("App {n}")}),
            )
            .await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    // A bound, not a speed target: a request that waited on an export would take 5 s.
    assert!(
        slowest < Duration::from_secs(4),
        "a request took {slowest:?}"
    );
    let (status, took) = terminate(&mut l).await;
    assert!(status.success(), "{status}");
    // The flush gives up within its share of the grace (a quarter of 8 s).
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    let (_, stderr) = output.join().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(held);
}

/// A temporary directory removed when dropped (the process's working directory).
mod tempfile_dir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = larder_testkit::fresh_sqlite_path()
                .parent()
                .unwrap()
                .join(format!("proc-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What became of one delivery of the burst.
#[derive(Debug)]
enum Fate {
    /// Answered: the status and, for a 2xx, its activity entry.
    Answered(u16, Option<String>),
    /// The connection was refused: the server had stopped accepting, nothing was read.
    Refused,
    /// Sent, and then cut off without an answer: what must never happen.
    CutOff(String),
}

#[tokio::test]
async fn sigterm_mid_burst_answers_every_request_already_read() {
    let _alone = crate::support::timing_sensitive().await;
    let database = larder_testkit::fresh_postgres_url().await;
    let grace = Duration::from_secs(15);
    let (mut l, _dir) = start(&[
        ("DATABASE_URL", database.clone()),
        ("LARDER_SHUTDOWN_GRACE", "15s".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    let output = drain(&mut l);
    wait_until_up(&mut l).await;
    let t = TestApp::at(&l.base);
    let c = t.configured_app("Burst").await;
    let webhook = c.webhook_url.replace("https://larder.test", &l.base);

    // A fresh connection per request, so a refusal is told apart from a cut-off.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let burst: Vec<_> = (0..300)
        .map(|n| {
            let mut purchase = larder_testkit::fixtures::thrivecart_json(
                "12-order-success-repeat-customer-blank-name",
            );
            purchase["order_id"] = format!("88{n:05}").into();
            purchase["thrivecart_secret"] = "sesame".into();
            let request = client.post(&webhook).json(&purchase);
            let answered = answered.clone();
            tokio::spawn(async move {
                let fate = match request.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        match resp.json::<Value>().await {
                            Ok(body) => Fate::Answered(
                                status,
                                body["delivery_id"].as_str().map(str::to_owned),
                            ),
                            Err(e) => Fate::CutOff(format!("body: {e}")),
                        }
                    }
                    Err(e) if e.is_connect() => Fate::Refused,
                    Err(e) => Fate::CutOff(format!("{e:?}")),
                };
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                fate
            })
        })
        .collect();
    // SIGTERM once a tenth of the burst is answered: the rest is in flight.
    while answered.load(std::sync::atomic::Ordering::SeqCst) < 30 {
        tokio::task::yield_now().await;
    }
    let in_flight = 300 - answered.load(std::sync::atomic::Ordering::SeqCst);
    let (status, took) = terminate(&mut l).await;
    assert!(status.success(), "larder exited with {status}");
    assert!(took < grace, "shutdown took {took:?}, past the grace");
    let _ = output.join();

    let mut recorded = Vec::new();
    let mut refused = 0;
    for task in burst {
        match task.await.unwrap() {
            Fate::Answered(status, id) => {
                assert!(status == 200 || status == 503, "answered {status}");
                if status == 200 {
                    recorded.push(uuid::Uuid::parse_str(&id.expect("a delivery id")).unwrap());
                }
            }
            Fate::Refused => refused += 1,
            Fate::CutOff(why) => panic!("a delivery was cut off without an answer: {why}"),
        }
    }
    eprintln!(
        "burst: {in_flight} in flight at SIGTERM, {} answered 200, {refused} refused",
        recorded.len()
    );
    assert!(in_flight > 0, "SIGTERM came after the burst");
    assert!(
        recorded.len() > 30,
        "only {} deliveries were answered 200 ({refused} refused): nothing in flight was finished",
        recorded.len()
    );
    // Every 200 is in the activity log.
    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    let found: i64 = sqlx::query_scalar("select count(*) from deliveries where id = any($1)")
        .bind(&recorded)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        found as usize,
        recorded.len(),
        "answered 200 but not recorded"
    );
}
