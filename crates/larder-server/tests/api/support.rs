//! Spawns a real Larder server in-process on `127.0.0.1:0` and talks HTTP to it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use larder_server::{Database, Validated};

pub const OPERATOR: &str = "test-operator-token-0123456789";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// The embedded default: SQLite and in-process caches.
    Sqlite,
    /// Production: PostgreSQL and Redis.
    Postgres,
}

pub struct TestApp {
    pub base: String,
    /// Where messages go when no SMTP server is set (one `.eml` file each).
    pub outbox_dir: std::path::PathBuf,
    client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// An answer: status, headers and the body parsed as JSON (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{field}` in {}", self.body))
            .to_owned()
    }

    /// Asserts an error answer in the shared shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.code(), code, "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
    }
}

pub async fn settings(backend: Backend) -> Validated {
    let (database, redis_url) = match backend {
        Backend::Sqlite => {
            let path = larder_testkit::fresh_sqlite_path();
            (
                Database::Sqlite(format!("sqlite://{}", path.display())),
                None,
            )
        }
        Backend::Postgres => {
            larder_testkit::require_redis().await;
            (
                Database::Postgres(larder_testkit::fresh_postgres_url().await),
                Some(larder_testkit::redis_url()),
            )
        }
    };
    Validated {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        public_url: "https://larder.test".into(),
        database,
        redis_url,
        redis_cluster_urls: Vec::new(),
        redis_prefix: larder_testkit::redis_prefix(),
        operator_token: Some(OPERATOR.into()),
        activity_retention: std::time::Duration::from_secs(90 * 24 * 60 * 60),
        migrate_on_start: true,
        shutdown_grace: std::time::Duration::from_secs(5),
        smtp_url: None,
        smtp_password: None,
        outbox_dir: larder_testkit::fresh_sqlite_path()
            .parent()
            .expect("a directory")
            .join("outbox"),
        mail_from: "larder@larder.test".into(),
        trusted_proxies: 0,
        metrics_listen: None,
        limits: larder_server::server::Limits::default(),
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(settings(backend).await).await
    }

    pub async fn spawn_with(settings: Validated) -> Self {
        Self::spawn_serving(settings, false).await
    }

    /// A server whose public URL is its own address, so the links it mails lead to it.
    pub async fn spawn_reachable(settings: Validated) -> Self {
        Self::spawn_serving(settings, true).await
    }

    async fn spawn_serving(mut settings: Validated, reachable: bool) -> Self {
        larder_testkit::init_test_log();
        let listener = larder_server::bind(settings.listen).await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        if reachable {
            settings.public_url = format!("http://{addr}");
        }
        let service = larder_server::build(&settings)
            .await
            .expect("build service");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(larder_server::serve(
            listener,
            service,
            async {
                let _ = rx.await;
            },
            std::time::Duration::from_secs(5),
        ));
        Self {
            base: format!("http://{addr}"),
            outbox_dir: settings.outbox_dir.clone(),
            client: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    /// A client of a service running elsewhere (a `larder` process) at `base`.
    pub fn at(base: &str) -> Self {
        let (tx, _) = tokio::sync::oneshot::channel::<()>();
        Self {
            base: base.to_owned(),
            outbox_dir: std::path::PathBuf::new(),
            client: reqwest::Client::new(),
            _shutdown: tx,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        Self::answer(resp).await
    }

    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Answer {
        Self::answer(req.send().await.expect("request sent")).await
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    async fn answer(resp: reqwest::Response) -> Answer {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.request(Method::GET, path, Some(token), None).await
    }

    /// Every item of a list, page after page (`path` already has its query, `limit` in it).
    pub async fn every_item(&self, path: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                Some(c) => self.get(&format!("{path}&cursor={c}"), token).await,
                None => self.get(path, token).await,
            };
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
            items.extend(page.body["items"].as_array().expect("items").clone());
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// The status of a `HEAD` of a full URL (webhook URLs carry their own base).
    pub async fn head_url(&self, url: &str) -> StatusCode {
        let url = url.replace("https://larder.test", &self.base);
        self.client
            .head(url)
            .send()
            .await
            .expect("request sent")
            .status()
    }

    // --- builders for the setup flow ----------------------------------------------------

    pub async fn create_app(&self, name: &str) -> String {
        let a = self
            .post("/admin/v1/apps", OPERATOR, json!({ "name": name }))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        a.str("id")
    }

    pub async fn create_key(&self, app: &str) -> String {
        let a = self
            .post(
                &format!("/admin/v1/apps/{app}/api-keys"),
                OPERATOR,
                json!({"name": "key"}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        a.str("key")
    }

    pub async fn create_level(&self, app: &str, token: &str, name: &str) -> String {
        let a = self
            .post(
                &format!("/admin/v1/apps/{app}/access-levels"),
                token,
                json!({ "name": name }),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        a.str("id")
    }

    /// An app with a key, a level, an enabled integration and a mapping for product 7.
    pub async fn configured_app(&self, name: &str) -> Configured {
        let app = self.create_app(name).await;
        let key = self.create_key(&app).await;
        let level = self.create_level(&app, &key, "Gold").await;
        let tc = self
            .post(
                &format!("/admin/v1/apps/{app}/thrivecart/enable"),
                &key,
                json!({"secret_word": "sesame"}),
            )
            .await;
        assert_eq!(tc.status, StatusCode::OK, "{}", tc.body);
        let mapping = self
            .post(
                &format!("/admin/v1/apps/{app}/thrivecart/mappings"),
                &key,
                json!({"product": "7", "access_level_id": level}),
            )
            .await;
        assert_eq!(mapping.status, StatusCode::CREATED, "{}", mapping.body);
        // A purchase of product 7, so the app has a member and an activity entry.
        let mut purchase: Value = larder_testkit::fixtures::thrivecart_json(
            "12-order-success-repeat-customer-blank-name",
        );
        purchase["thrivecart_secret"] = "sesame".into();
        let webhook = tc
            .str("webhook_url")
            .replace("https://larder.test", &self.base);
        let delivered = self.raw(self.client.post(webhook).json(&purchase)).await;
        assert_eq!(delivered.body["status"], "applied", "{}", delivered.body);
        let members = self
            .get(&format!("/admin/v1/apps/{app}/members"), OPERATOR)
            .await;
        let member = members.body["items"][0]["id"]
            .as_str()
            .expect("a member")
            .to_owned();
        let detail = self
            .get(&format!("/admin/v1/apps/{app}/members/{member}"), OPERATOR)
            .await;
        let grant = detail.body["grants"][0]["id"]
            .as_str()
            .expect("a grant")
            .to_owned();
        let key_id = self
            .get(&format!("/admin/v1/apps/{app}/api-keys"), OPERATOR)
            .await
            .body["items"][0]["id"]
            .as_str()
            .expect("a key id")
            .to_owned();
        Configured {
            delivery: delivered.str("delivery_id"),
            member,
            grant,
            webhook_url: tc.str("webhook_url"),
            mapping: mapping.str("id"),
            app,
            key,
            key_id,
            level,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Configured {
    pub app: String,
    pub key: String,
    pub key_id: String,
    pub level: String,
    pub mapping: String,
    pub webhook_url: String,
    pub member: String,
    pub delivery: String,
    pub grant: String,
}

/// Runs one async test body on both backends, as two `#[tokio::test]`s.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Runs statements directly on a test's database (to install a failure, say).
pub async fn execute(database: &Database, statements: &[&str]) {
    use sqlx::Connection;
    match database {
        Database::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(*s))
                    .execute(&mut conn)
                    .await
                    .expect(s);
            }
        }
        Database::Sqlite(url) => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(*s))
                    .execute(&mut conn)
                    .await
                    .expect(s);
            }
        }
    }
}

/// Held by the tests that measure time (a change reaching another process within a second,
/// webhooks answered while sign-ins hash) and by the CPU-heavy schemathesis run, so they
/// never run at the same time on a small machine.
pub async fn timing_sensitive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}
