//! Real `larder` processes: two sharing PostgreSQL and Redis, a bare start on a fresh
//! directory, and invalid configuration.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::OPERATOR;

pub const BIN: &str = env!("CARGO_BIN_EXE_larder");

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct Larder {
    pub child: Child,
    pub base: String,
}

impl Drop for Larder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn larder(envs: &[(&str, String)], dir: &std::path::Path) -> (Command, String) {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LARDER_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    (cmd, format!("http://127.0.0.1:{port}"))
}

/// Polls `/healthz` until the process answers (a start, not a timing assertion).
pub async fn wait_until_up(l: &mut Larder) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = l.child.try_wait() {
            panic!("larder exited early with {status}");
        }
        // (Closed once answered: it holds no connection of the service's afterwards.)
        if client
            .get(format!("{}/healthz", l.base))
            .header("connection", "close")
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("larder did not come up at {}", l.base);
}

async fn spawn(envs: &[(&str, String)], dir: &std::path::Path) -> Larder {
    let (mut cmd, base) = larder(envs, dir);
    let child = cmd.stdout(Stdio::null()).spawn().expect("spawn larder");
    let mut l = Larder { child, base };
    wait_until_up(&mut l).await;
    l
}

async fn head(client: &reqwest::Client, url: &str) -> StatusCode {
    client.head(url).send().await.expect("HEAD").status()
}

/// Polls until `url` answers `want`; returns how long that took.
async fn time_until(client: &reqwest::Client, url: &str, want: StatusCode) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if head(client, url).await == want {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{url} never answered {want}");
}

#[tokio::test]
async fn a_disable_through_one_process_reaches_the_other_within_a_second() {
    let _alone = crate::support::timing_sensitive().await;
    larder_testkit::require_redis().await;
    let dir = std::env::temp_dir();
    let envs = [
        ("DATABASE_URL", larder_testkit::fresh_postgres_url().await),
        ("REDIS_URL", larder_testkit::redis_url()),
        ("LARDER_REDIS_PREFIX", larder_testkit::redis_prefix()),
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
    ];
    let one = spawn(&envs, &dir).await;
    let two = spawn(&envs, &dir).await;
    let client = reqwest::Client::new();
    let auth = format!("Bearer {OPERATOR}");

    let app: serde_json::Value = client
        .post(format!("{}/admin/v1/apps", one.base))
        .header("authorization", &auth)
        .json(&json!({"name": "Shared"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = app["id"].as_str().unwrap().to_owned();
    let admin = |base: &str, action: &str| {
        client
            .post(format!("{base}/admin/v1/apps/{app}/thrivecart/{action}"))
            .header("authorization", &auth)
            .json(&json!({}))
            .send()
    };
    let tc: serde_json::Value = admin(&one.base, "enable")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tc["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let on = |l: &Larder| format!("{}/webhooks/thrivecart/{token}", l.base);

    // Both processes have looked the token up, so both have it cached.
    assert_eq!(head(&client, &on(&one)).await, StatusCode::OK);
    assert_eq!(head(&client, &on(&two)).await, StatusCode::OK);

    let done = admin(&one.base, "disable").await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(head(&client, &on(&one)).await, StatusCode::NOT_FOUND);
    let took = time_until(&client, &on(&two), StatusCode::NOT_FOUND).await;
    assert!(
        took < Duration::from_secs(1),
        "the other process took {took:?}"
    );

    // Enabling through the other process brings the URL back on the first.
    assert_eq!(
        admin(&two.base, "enable").await.unwrap().status(),
        StatusCode::OK
    );
    let took = time_until(&client, &on(&one), StatusCode::OK).await;
    assert!(
        took < Duration::from_secs(1),
        "the first process took {took:?}"
    );

    // A rotation through one retires the old URL in the other.
    let rotated = admin(&two.base, "rotate-webhook-token").await.unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let took = time_until(&client, &on(&one), StatusCode::NOT_FOUND).await;
    assert!(
        took < Duration::from_secs(1),
        "the first process took {took:?}"
    );

    // A mapping added through one process applies to deliveries the other receives.
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    let token = rotated["webhook_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let url = format!("{}/webhooks/thrivecart/{token}", two.base);
    let mut purchase: serde_json::Value =
        larder_testkit::fixtures::thrivecart_json("01-order-success-single-product");
    let mut deliver = |order: usize| {
        purchase["order_id"] = format!("9{order}").into();
        client.post(&url).json(&purchase).send()
    };
    let first: serde_json::Value = deliver(0).await.unwrap().json().await.unwrap();
    assert_eq!(first["status"], "unmapped", "{first}");
    let level: serde_json::Value = client
        .post(format!("{}/admin/v1/apps/{app}/access-levels", one.base))
        .header("authorization", &auth)
        .json(&json!({"name": "Knives"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mapped = client
        .post(format!(
            "{}/admin/v1/apps/{app}/thrivecart/mappings",
            one.base
        ))
        .header("authorization", &auth)
        .json(&json!({"product": "12", "access_level_id": level["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(mapped.status(), StatusCode::CREATED);
    let started = Instant::now();
    let mut order = 1;
    loop {
        let answer: serde_json::Value = deliver(order).await.unwrap().json().await.unwrap();
        if answer["status"] == "applied" {
            break;
        }
        assert_eq!(answer["status"], "unmapped", "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the mapping never arrived"
        );
        order += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the other process took {took:?}"
    );

    // An API key revoked through one process stops working in the other at once.
    let key: serde_json::Value = client
        .post(format!("{}/admin/v1/apps/{app}/api-keys", one.base))
        .header("authorization", &auth)
        .json(&json!({"name": "shared"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let levels = format!("{}/admin/v1/apps/{app}/access-levels", two.base);
    let secret = key["key"].as_str().unwrap();
    let before = client
        .get(&levels)
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), StatusCode::OK);
    let revoked = client
        .delete(format!(
            "{}/admin/v1/apps/{app}/api-keys/{}",
            one.base,
            key["id"].as_str().unwrap()
        ))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let after = client
        .get(&levels)
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    // An app deleted through one process is gone from the other: its URL within a second,
    // its keys at once.
    let key: serde_json::Value = client
        .post(format!("{}/admin/v1/apps/{app}/api-keys", one.base))
        .header("authorization", &auth)
        .json(&json!({"name": "doomed"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = key["key"].as_str().unwrap();
    let webhook = format!("{}/webhooks/thrivecart/{token}", two.base);
    assert_eq!(head(&client, &webhook).await, StatusCode::OK);
    let status = |token: &str| {
        let request = client.get(&levels).bearer_auth(token.to_owned()).send();
        async { request.await.unwrap().status() }
    };
    assert_eq!(status(secret).await, StatusCode::OK);
    let deleted = client
        .delete(format!("{}/admin/v1/apps/{app}", one.base))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(secret).await, StatusCode::UNAUTHORIZED);
    let took = time_until(&client, &webhook, StatusCode::NOT_FOUND).await;
    assert!(
        took < Duration::from_secs(1),
        "the other process took {took:?}"
    );
}

#[tokio::test]
async fn a_bare_start_runs_on_sqlite_under_data_and_prints_the_token_once() {
    let dir = larder_testkit::fresh_sqlite_path()
        .parent()
        .unwrap()
        .to_path_buf();
    let (mut cmd, base) = larder(&[], &dir);
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn larder");
    let stdout = child.stdout.take().unwrap();
    let mut first = Larder { child, base };
    // The token is printed before the server starts answering.
    let token = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.trim().strip_prefix("lop_").map(|t| format!("lop_{t}")))
    })
    .await
    .unwrap()
    .expect("a generated operator token on stdout");
    wait_until_up(&mut first).await;
    assert!(dir.join("data").join("larder.db").exists());

    let client = reqwest::Client::new();
    let apps = client
        .get(format!("{}/admin/v1/apps", first.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), StatusCode::OK);
    drop(first);

    // A second start keeps the stored hash and prints nothing secret.
    let (mut cmd, base) = larder(&[], &dir);
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn larder");
    let stdout = child.stdout.take().unwrap();
    let mut second = Larder { child, base };
    wait_until_up(&mut second).await;
    let apps = client
        .get(format!("{}/admin/v1/apps", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), StatusCode::OK);
    drop(second);
    let printed =
        tokio::task::spawn_blocking(move || std::io::read_to_string(stdout).unwrap_or_default())
            .await
            .unwrap();
    assert!(!printed.contains("lop_"), "{printed}");
}

fn run_to_exit(envs: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").env_clear().env("RUST_LOG", "off");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run larder");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_configuration_exits_with_one_sentence() {
    type Case<'a> = (&'a [(&'a str, &'a str)], i32, &'a str);
    let cases: [Case; 6] = [
        (&[("LARDER_LISTEN", "nowhere")], 2, "LARDER_LISTEN"),
        (&[("RUST_LOG", "larder=[nope")], 2, "RUST_LOG"),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
            2,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[("DATABASE_URL", "mysql://u:hunter2@h/db")],
            2,
            "DATABASE_URL",
        ),
        (
            &[("LARDER_PUBLIC_URL", "larder.example")],
            2,
            "LARDER_PUBLIC_URL",
        ),
        (
            &[
                ("LARDER_LISTEN", "127.0.0.1:0"),
                ("DATABASE_URL", "postgres://postgres:hunter2@127.0.0.1:1/x"),
            ],
            1,
            "cannot open the database",
        ),
    ];
    for (envs, code, says) in cases {
        let (status, stderr) = run_to_exit(envs);
        assert_eq!(status, code, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

#[tokio::test]
async fn without_migrations_on_start_an_old_schema_is_refused_until_migrated() {
    let database = larder_testkit::fresh_postgres_url().await;
    let off = [
        ("LARDER_LISTEN", "127.0.0.1:0"),
        ("DATABASE_URL", database.as_str()),
        ("LARDER_MIGRATE_ON_START", "false"),
    ];
    let (status, stderr) = run_to_exit(&off);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("larder migrate"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let migrated = Command::new(BIN)
        .args(["migrate", "--database-url", &database])
        .env_clear()
        .env("RUST_LOG", "off")
        .status()
        .expect("run larder migrate");
    assert!(migrated.success());
    let dir = std::env::temp_dir();
    let envs = [
        ("DATABASE_URL", database.clone()),
        ("LARDER_MIGRATE_ON_START", "false".to_owned()),
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
    ];
    let l = spawn(&envs, &dir).await;
    let apps = reqwest::Client::new()
        .get(format!("{}/admin/v1/apps", l.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), StatusCode::OK);
    drop(l);

    // After a rollback the database is ahead of the binary: it still starts, migrating or not.
    let pool = sqlx::PgPool::connect(&database).await.unwrap();
    sqlx::query(
        "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
         values (99990101000000, 'from a newer release', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for migrate in ["true", "false"] {
        let envs = [
            ("DATABASE_URL", database.clone()),
            ("LARDER_MIGRATE_ON_START", migrate.to_owned()),
            ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
        ];
        let l = spawn(&envs, &dir).await;
        let ready = reqwest::get(format!("{}/readyz", l.base)).await.unwrap();
        assert_eq!(
            ready.status(),
            StatusCode::OK,
            "migrate on start: {migrate}"
        );
    }
}

#[tokio::test]
async fn on_a_redis_cluster_intake_outlives_a_node_restart() {
    let cluster = tokio::task::spawn_blocking(larder_testkit::cluster::RedisCluster::start)
        .await
        .unwrap();
    let dir = std::env::temp_dir();
    let envs = [
        ("DATABASE_URL", larder_testkit::fresh_postgres_url().await),
        ("LARDER_REDIS_CLUSTER_URLS", cluster.urls().join(",")),
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
        ("LARDER_PUBLIC_URL", "https://larder.test".to_owned()),
    ];
    let l = spawn(&envs, &dir).await;
    let t = crate::support::TestApp::at(&l.base);
    let c = t.configured_app("Clustered").await;
    let webhook = c.webhook_url.replace("https://larder.test", &l.base);
    let purchase = |order: usize| {
        let mut p = larder_testkit::fixtures::thrivecart_json(
            "12-order-success-repeat-customer-blank-name",
        );
        p["order_id"] = format!("66{order:05}").into();
        p["thrivecart_secret"] = "sesame".into();
        p
    };
    let t = &t;
    let webhook = &webhook;
    let deliver =
        |order: usize| async move { t.raw(t.client().post(webhook).json(&purchase(order))).await };
    for order in 0..20 {
        assert_eq!(deliver(order).await.body["status"], "applied");
    }
    let cluster = std::sync::Arc::new(cluster);
    let c1 = cluster.clone();
    tokio::task::spawn_blocking(move || c1.stop_node(1))
        .await
        .unwrap();
    // A third of the keys are unreachable: those lookups go to the database, and the
    // service stays ready.
    for _ in 0..5 {
        let ready = t
            .client()
            .get(format!("{}/readyz", l.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }
    for order in 20..40 {
        assert_eq!(deliver(order).await.body["status"], "applied");
    }
    for order in [0, 5, 25] {
        assert_eq!(deliver(order).await.body["status"], "duplicate");
    }
    let c1 = cluster.clone();
    tokio::task::spawn_blocking(move || c1.restart_node(1))
        .await
        .unwrap();
    // Back, the node is used again once its keys' breakers have let a probe through (after
    // at most their open spell): keep delivering until it holds keys again.
    let mut next = 40;
    let deadline = std::time::Instant::now() + 3 * larder_cache::OPEN_FOR;
    loop {
        assert_eq!(deliver(next).await.body["status"], "applied");
        next += 1;
        if next >= 60 && cluster.keys_per_node().iter().all(|n| *n > 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted node was never used again: {:?}",
            cluster.keys_per_node()
        );
        if next >= 60 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    for order in 40..next {
        assert_eq!(deliver(order).await.body["status"], "duplicate");
    }
    let metrics = t
        .client()
        .get(format!("{}/metrics", l.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"larder_cache_lookups_total{cache="idempotency",result="error"}"#),
        "the stopped node was never hit:\n{metrics}"
    );
    assert!(
        metrics.contains(r#"larder_cache_lookups_total{cache="idempotency",result="hit"}"#),
        "{metrics}"
    );
}
