//! Faults of the parts around Larder, during a burst of deliveries: a `larder` process
//! killed (`kill -9`), PostgreSQL stopped at once and started again, Redis killed and
//! started again, hung, or flushed, and two or three processes receiving the same
//! deliveries at once. The senders retry whatever got no 2xx, as ThriveCart does. After
//! each: every delivery is applied exactly once, every 2xx delivery is in the activity log,
//! no `duplicate` points at a delivery that never committed, and while PostgreSQL is down
//! nothing is answered 2xx. Each test runs its own PostgreSQL and Redis; the machine's are
//! never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::processes::{Larder, larder, wait_until_up};
use crate::support::{OPERATOR, TestApp};
use larder_testkit::fixtures::SECRET_WORD as SECRET;
use larder_testkit::throwaway::{ThrowawayPostgres, ThrowawayRedis};

/// How many distinct purchases a burst sends; a fifth of them twice.
const PURCHASES: usize = 150;

struct World {
    pg: ThrowawayPostgres,
    redis: Mutex<ThrowawayRedis>,
    dir: std::path::PathBuf,
    processes: Vec<Larder>,
    app: String,
    token: String,
}

/// What the senders saw: per delivery, the answers it got until one was 2xx.
#[derive(Debug, Default)]
struct Seen {
    /// Delivery index → (status, delivery id) of its 2xx answers.
    ok: BTreeMap<usize, Vec<(String, String)>>,
    /// 2xx answers received while PostgreSQL was down (there must be none).
    ok_while_down: Vec<String>,
    non_2xx: usize,
}

impl World {
    async fn start(processes: usize) -> Self {
        let (pg, redis) =
            tokio::task::spawn_blocking(|| (ThrowawayPostgres::start(), ThrowawayRedis::start()))
                .await
                .unwrap();
        let dir = larder_testkit::fresh_sqlite_path()
            .parent()
            .unwrap()
            .to_path_buf();
        let mut world = Self {
            pg,
            redis: Mutex::new(redis),
            dir,
            processes: Vec::new(),
            app: String::new(),
            token: String::new(),
        };
        for _ in 0..processes {
            world.spawn().await;
        }
        world.configure().await;
        world
    }

    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.pg.url()),
            ("REDIS_URL", self.redis.lock().unwrap().url()),
            ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
            ("LARDER_PUBLIC_URL", "https://larder.test".to_owned()),
            ("RUST_LOG", "error".to_owned()),
        ]
    }

    async fn spawn(&mut self) {
        let (mut cmd, base) = larder(&self.envs(), &self.dir);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn larder");
        let mut l = Larder { child, base };
        wait_until_up(&mut l).await;
        self.processes.push(l);
    }

    fn bases(&self) -> Vec<String> {
        self.processes.iter().map(|l| l.base.clone()).collect()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let client = reqwest::Client::new();
        let mut req = client
            .request(method, format!("{}{path}", self.processes[0].base))
            .bearer_auth(OPERATOR);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn configure(&mut self) {
        use reqwest::Method;
        let app = self
            .admin(
                Method::POST,
                "/admin/v1/apps",
                Some(json!({"name": "Burst"})),
            )
            .await;
        self.app = app["id"].as_str().unwrap().to_owned();
        let level = self
            .admin(
                Method::POST,
                &format!("/admin/v1/apps/{}/access-levels", self.app),
                Some(json!({"name": "Gold"})),
            )
            .await;
        let tc = self
            .admin(
                Method::POST,
                &format!("/admin/v1/apps/{}/thrivecart/enable", self.app),
                Some(json!({"secret_word": SECRET})),
            )
            .await;
        self.token = tc["webhook_url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        self.admin(
            Method::POST,
            &format!("/admin/v1/apps/{}/thrivecart/mappings", self.app),
            Some(json!({"product": "7", "access_level_id": level["id"]})),
        )
        .await;
    }
}

/// Purchase `n`: its own order and its own customer.
fn purchase(n: usize) -> Vec<u8> {
    let mut doc: Value = serde_json::from_str(
        larder_testkit::fixtures::thrivecart("01-order-success-single-product").json,
    )
    .unwrap();
    doc["order_id"] = format!("77{n:06}").into();
    doc["order"]["id"] = format!("77{n:06}").into();
    doc["invoice_id"] = format!("9{n:08}").into();
    doc["customer"]["email"] = format!("buyer{n}@example.com").into();
    doc["purchase_map"] = json!(["product-7"]);
    doc["purchase_map_flat"] = "product-7".into();
    doc["base_product"] = "7".into();
    serde_json::to_vec(&doc).unwrap()
}

/// What a fault sees of a burst: a flag to raise while PostgreSQL is down, and how many
/// deliveries got their 2xx so far.
#[derive(Clone)]
struct Probe {
    down: Arc<Mutex<bool>>,
    done: Arc<std::sync::atomic::AtomicUsize>,
}

impl Probe {
    /// Waits until `n` deliveries are through, so the fault lands mid-burst.
    async fn after(&self, n: usize) {
        while self.done.load(std::sync::atomic::Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn set_down(&self, down: bool) {
        *self.down.lock().unwrap() = down;
    }
}

/// Sends every delivery (a fifth twice) from 8 senders until each got a 2xx, retrying the
/// others like ThriveCart; `fault` runs alongside.
async fn burst<F, Fut>(world: &World, bases: Arc<Mutex<Vec<String>>>, fault: F) -> Seen
where
    F: FnOnce(Probe) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut queue: Vec<usize> = (0..PURCHASES).collect();
    queue.extend((0..PURCHASES).step_by(5));
    let queue = Arc::new(Mutex::new(queue));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let down = Arc::new(Mutex::new(false));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let probe = Probe {
        down: down.clone(),
        done: done.clone(),
    };
    let path = format!("/webhooks/thrivecart/{}", world.token);
    let senders = (0..8).map(|s| {
        let queue = queue.clone();
        let seen = seen.clone();
        let down = down.clone();
        let bases = bases.clone();
        let path = path.clone();
        let done = done.clone();
        async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut turn = s;
            loop {
                let Some(n) = queue.lock().unwrap().pop() else {
                    return;
                };
                let body = purchase(n);
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "delivery {n} never got a 2xx");
                    let base = {
                        let bases = bases.lock().unwrap();
                        turn += 1;
                        bases[turn % bases.len()].clone()
                    };
                    let was_down = *down.lock().unwrap();
                    let answer = client
                        .post(format!("{base}{path}"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let Ok(resp) = answer else {
                        seen.lock().unwrap().non_2xx += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let status = resp.status();
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    if status.is_success() {
                        let mut seen = seen.lock().unwrap();
                        if was_down && *down.lock().unwrap() {
                            seen.ok_while_down.push(body.to_string());
                        }
                        seen.ok.entry(n).or_default().push((
                            body["status"].as_str().unwrap_or_default().to_owned(),
                            body["delivery_id"].as_str().unwrap_or_default().to_owned(),
                        ));
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                    seen.lock().unwrap().non_2xx += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    let sending = futures::future::join_all(senders);
    let ((), _) = tokio::join!(fault(probe), sending);
    Arc::try_unwrap(seen).unwrap().into_inner().unwrap()
}

/// Checks what a burst left, through the admin API.
async fn check(world: &World, seen: &Seen) {
    assert!(
        seen.ok_while_down.is_empty(),
        "2xx while PostgreSQL was down: {:?}",
        seen.ok_while_down
    );
    assert_eq!(seen.ok.len(), PURCHASES, "every delivery got a 2xx");
    let admin = TestApp::at(&world.processes[0].base);
    // Every member once, each with exactly one grant.
    let app = &world.app;
    let members = admin
        .every_item(&format!("/admin/v1/apps/{app}/members?limit=200"), OPERATOR)
        .await;
    assert_eq!(members.len(), PURCHASES, "one member per purchase");
    for m in &members {
        assert_eq!(m["access_levels"].as_array().unwrap().len(), 1, "{m}");
    }
    // The activity log: exactly one applied entry per purchase; every 2xx entry there; every
    // duplicate points at an entry that committed (failed attempts may be there too: each
    // was retried and applied once).
    let entries = admin
        .every_item(
            &format!("/admin/v1/apps/{app}/activity?limit=200"),
            OPERATOR,
        )
        .await;
    let by_id: BTreeMap<&str, &Value> = entries
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    let applied: Vec<&str> = entries
        .iter()
        .filter(|e| e["status"] == "applied")
        .map(|e| e["order_id"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = applied.iter().copied().collect();
    assert_eq!(
        applied.len(),
        PURCHASES,
        "each purchase applied exactly once"
    );
    assert_eq!(distinct.len(), PURCHASES);
    for answers in seen.ok.values() {
        for (status, id) in answers {
            let entry = by_id.get(id.as_str()).unwrap_or_else(|| {
                panic!("a 2xx delivery ({status}, {id}) is not in the activity log")
            });
            assert_eq!(entry["status"], status.as_str());
        }
    }
    for e in entries.iter().filter(|e| e["status"] == "duplicate") {
        let message = e["message"].as_str().unwrap();
        let original = message
            .strip_prefix("Duplicate of delivery ")
            .and_then(|m| m.split(';').next())
            .unwrap_or_else(|| panic!("{message}"));
        let first = by_id
            .get(original)
            .unwrap_or_else(|| panic!("a duplicate of {original}, which never committed"));
        assert_ne!(first["status"], "duplicate", "{first}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_in_a_burst_loses_nothing() {
    let mut world = World::start(2).await;
    let bases = Arc::new(Mutex::new(world.bases()));
    let victim_pid = world.processes[0].child.id();
    let seen = burst(&world, bases.clone(), |probe| async move {
        probe.after(30).await;
        let _ = std::process::Command::new("kill")
            .args(["-9", &victim_pid.to_string()])
            .status();
    })
    .await;
    // The check reads through the survivor.
    world.processes.remove(0);
    check(&world, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_again_in_a_burst_loses_nothing() {
    let world = World::start(1).await;
    let bases = Arc::new(Mutex::new(world.bases()));
    let pg = &world.pg;
    let seen = burst(&world, bases, |probe| async move {
        probe.after(30).await;
        // Down once it has stopped: a delivery sent before may still have committed.
        tokio::task::block_in_place(|| pg.stop_immediately());
        probe.set_down(true);
        tokio::time::sleep(Duration::from_secs(3)).await;
        probe.set_down(false);
        tokio::task::block_in_place(|| pg.start_again());
    })
    .await;
    assert!(seen.non_2xx > 0, "the outage was felt");
    check(&world, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flushed_hung_killed_and_back_in_a_burst_loses_nothing() {
    let world = World::start(2).await;
    let bases = Arc::new(Mutex::new(world.bases()));
    let redis = &world.redis;
    let seen = burst(&world, bases, |probe| async move {
        probe.after(20).await;
        redis.lock().unwrap().flush();
        probe.after(40).await;
        redis.lock().unwrap().hang();
        tokio::time::sleep(Duration::from_secs(2)).await;
        redis.lock().unwrap().unhang();
        probe.after(80).await;
        tokio::task::block_in_place(|| redis.lock().unwrap().kill());
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| redis.lock().unwrap().restart());
    })
    .await;
    check(&world, &seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_receiving_the_same_deliveries_apply_each_once() {
    let world = World::start(3).await;
    let bases = Arc::new(Mutex::new(world.bases()));
    let seen = burst(&world, bases, |_| async {}).await;
    check(&world, &seen).await;
}

#[tokio::test]
async fn while_redis_hangs_deliveries_are_answered_within_a_second() {
    let world = World::start(1).await;
    world.redis.lock().unwrap().hang();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!(
        "{}/webhooks/thrivecart/{}",
        world.processes[0].base, world.token
    );
    for n in 0..10 {
        let started = Instant::now();
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(purchase(n))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(took < Duration::from_secs(1), "delivery {n} took {took:?}");
    }
    // /readyz says why.
    let ready = client
        .get(format!("{}/readyz", world.processes[0].base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().await.unwrap().to_lowercase().contains("redis"));
    // Each applied once, also when sent again.
    for n in 0..10 {
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(purchase(n))
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "duplicate", "{body}");
    }
    world.redis.lock().unwrap().unhang();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_a_delivery_is_refused_within_seconds() {
    let world = World::start(1).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!(
        "{}/webhooks/thrivecart/{}",
        world.processes[0].base, world.token
    );
    let post = |n: usize| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(purchase(n))
            .send()
    };
    assert_eq!(post(0).await.unwrap().status(), StatusCode::OK);
    tokio::task::block_in_place(|| world.pg.stop_immediately());
    for n in 1..4 {
        let started = Instant::now();
        let resp = post(n).await.unwrap();
        let took = started.elapsed();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key("retry-after"));
        // One wait for a connection (2 s), not two.
        assert!(took < Duration::from_secs(3), "a 503 took {took:?}");
    }
    let ready = client
        .get(format!("{}/readyz", world.processes[0].base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    tokio::task::block_in_place(|| world.pg.start_again());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if post(1).await.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(Instant::now() < deadline, "intake never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
