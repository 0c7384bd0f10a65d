//! Messages to members through a real SMTP server (aiosmtpd, from the pinned tools) and a
//! real `larder` process: a purchase's welcome email arrives once, its link sets a password,
//! and a process killed before it could send still sends it, once, when it is back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::members::{set_password, sign_in};
use crate::processes::{Larder, free_port, larder, wait_until_up};
use crate::support::{OPERATOR, TestApp};

/// An SMTP server on a loopback port, storing what it receives in a Maildir.
pub struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    pub fn start() -> Self {
        let port = free_port();
        let maildir = larder_testkit::fresh_sqlite_path()
            .parent()
            .unwrap()
            .join("maildir");
        let child = Command::new(larder_testkit::pinned_tool("venv/bin/python"))
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far.
    pub fn received(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Waits until `n` messages have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A received message's headers and plain-text body, decoded by Python's `email` package.
pub fn read_message(path: &Path) -> serde_json::Value {
    let out = Command::new(larder_testkit::pinned_tool("venv/bin/python"))
        .args([
            "-c",
            "import email, email.policy, json, sys\n\
             m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
             text = m.get_body(('plain',)).get_content()\n\
             html = m.get_body(('html',)).get_content()\n\
             json.dump({'to': str(m['To']), 'from': str(m['From']), 'subject': str(m['Subject']),\n\
                        'text': text, 'html': html}, sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn link_token(text: &str) -> String {
    let start = text.find("token=").expect("a link with a token") + 6;
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

fn spawn_with(envs: &[(&str, String)], dir: &Path) -> Larder {
    let (mut cmd, base) = larder(envs, dir);
    let child = cmd.stdout(Stdio::null()).spawn().expect("spawn larder");
    Larder { child, base }
}

fn purchase(order: &str) -> serde_json::Value {
    let mut p =
        larder_testkit::fixtures::thrivecart_json("12-order-success-repeat-customer-blank-name");
    p["order_id"] = order.into();
    p["thrivecart_secret"] = "sesame".into();
    p
}

#[tokio::test]
async fn a_purchase_emails_one_welcome_whose_link_signs_the_member_in() {
    let smtp = SmtpServer::start();
    let dir = larder_testkit::fresh_sqlite_path()
        .parent()
        .unwrap()
        .to_path_buf();
    let envs = [
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
        ("LARDER_PUBLIC_URL", "https://larder.test".to_owned()),
        ("LARDER_SMTP_URL", smtp.url()),
        ("LARDER_MAIL_FROM", "members@larder.test".to_owned()),
    ];
    let mut l = spawn_with(&envs, &dir);
    wait_until_up(&mut l).await;
    let t = TestApp::at(&l.base);
    // configured_app delivers a first purchase: that is the welcome.
    let c = t.configured_app("Pantry Club").await;
    let received = smtp.wait_for(1).await;
    let welcome = read_message(&received[0]);
    assert_eq!(welcome["subject"], "Welcome to Pantry Club");
    assert_eq!(welcome["from"], "members@larder.test");
    let text = welcome["text"].as_str().unwrap();
    assert!(text.contains("access to: Gold."), "{text}");
    assert!(
        text.contains(&format!(
            "https://larder.test/members/{}/set-password?token=",
            c.app
        )),
        "{text}"
    );
    assert!(welcome["html"].as_str().unwrap().contains("<a href="));

    // The link works: a password, then a session.
    let token = link_token(text);
    let set = set_password(&t, &c.app, &token, "a welcome passphrase").await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.body);
    let to = welcome["to"].as_str().unwrap().to_owned();
    let address = to
        .rsplit('<')
        .next()
        .unwrap()
        .trim_end_matches('>')
        .to_owned();
    let session = sign_in(&t, &c.app, &address, "a welcome passphrase").await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);

    // A second purchase (which grants again) and a retry of it: no second welcome.
    let webhook = c.webhook_url.replace("https://larder.test", &l.base);
    let mut answers = Vec::new();
    for order in ["7710001", "7710001"] {
        let a = t
            .raw(t.client().post(&webhook).json(&purchase(order)))
            .await;
        answers.push(a.body["status"].as_str().unwrap_or_default().to_owned());
        if answers.len() == 1 {
            let entry = t
                .get(
                    &format!("/admin/v1/apps/{}/activity/{}", c.app, a.str("delivery_id")),
                    OPERATOR,
                )
                .await;
            assert!(
                entry.body["effects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == "granted"),
                "{}",
                entry.body
            );
        }
    }
    assert_eq!(answers, ["applied", "duplicate"]);
    // The sender looks every second; give it three looks.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = async {
        t.client()
            .get(format!("{}/metrics", l.base))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let text = metrics.await;
    assert!(
        text.contains(r#"larder_messages_total{kind="welcome",result="sent"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("larder_outbox_oldest_queued_seconds 0"),
        "{text}"
    );
    assert_eq!(smtp.received().len(), 1, "a second welcome was sent");
}

#[tokio::test]
async fn a_welcome_outlives_a_process_that_died_before_sending_it() {
    let smtp = SmtpServer::start();
    let dir = larder_testkit::fresh_sqlite_path()
        .parent()
        .unwrap()
        .to_path_buf();
    let database = larder_testkit::fresh_postgres_url().await;
    // First the mail server is unreachable: the purchase commits, the sending fails.
    let unreachable = format!("smtp://127.0.0.1:{}", free_port());
    let base_envs = [
        ("DATABASE_URL", database.clone()),
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
        ("LARDER_PUBLIC_URL", "https://larder.test".to_owned()),
    ];
    let mut envs = base_envs.to_vec();
    envs.push(("LARDER_SMTP_URL", unreachable));
    let mut first = spawn_with(&envs, &dir);
    wait_until_up(&mut first).await;
    let t = TestApp::at(&first.base);
    let c = t.configured_app("Pantry Club").await;
    // Wait until the sender's failed attempt is recorded (the message is queued again, its
    // claim released), then kill the process outright.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = t
            .get(&format!("/admin/v1/apps/{}/messages", c.app), OPERATOR)
            .await;
        let welcome = &list.body["items"][0];
        if welcome["attempts"].as_u64().unwrap_or(0) >= 1 {
            assert_eq!(welcome["status"], "queued", "{}", list.body);
            assert!(welcome["last_error"].is_string(), "{}", list.body);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sender never tried: {}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = first.child.kill();
    let _ = first.child.wait();
    assert!(smtp.received().is_empty());

    // Back, with the mail server reachable: the welcome goes out at its next attempt, once.
    let mut envs = base_envs.to_vec();
    envs.push(("LARDER_SMTP_URL", smtp.url()));
    let mut second = spawn_with(&envs, &dir);
    wait_until_up(&mut second).await;
    let received = smtp.wait_for(1).await;
    assert_eq!(
        read_message(&received[0])["subject"],
        "Welcome to Pantry Club"
    );
    let t = TestApp::at(&second.base);
    let webhook = c.webhook_url.replace("https://larder.test", &second.base);
    t.raw(t.client().post(&webhook).json(&purchase("7720001")))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.received().len(), 1, "the welcome went out twice");
}

/// An SMTP server that takes connections and never says a word.
struct SilentServer {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SilentServer {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        Self { port, accepted }
    }
}

#[tokio::test]
async fn a_welcome_outlives_a_process_killed_in_the_middle_of_sending_it() {
    let smtp = SmtpServer::start();
    let silent = SilentServer::start();
    let dir = larder_testkit::fresh_sqlite_path()
        .parent()
        .unwrap()
        .to_path_buf();
    let base_envs = [
        ("LARDER_OPERATOR_TOKEN", OPERATOR.to_owned()),
        ("LARDER_PUBLIC_URL", "https://larder.test".to_owned()),
    ];
    // The sender claims the welcome and waits on a server that never answers: killed
    // there, it leaves a claim nobody else may take until its lease runs out.
    let mut envs = base_envs.to_vec();
    envs.push((
        "LARDER_SMTP_URL",
        format!("smtp://127.0.0.1:{}", silent.port),
    ));
    let mut first = spawn_with(&envs, &dir);
    wait_until_up(&mut first).await;
    let t = TestApp::at(&first.base);
    let c = t.configured_app("Pantry Club").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while silent.accepted.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the sender never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = first.child.kill();
    let _ = first.child.wait();

    // Back with a mail server that answers: the welcome goes out once the lease is up
    // (a minute), once.
    let mut envs = base_envs.to_vec();
    envs.push(("LARDER_SMTP_URL", smtp.url()));
    let mut second = spawn_with(&envs, &dir);
    wait_until_up(&mut second).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while smtp.received().is_empty() {
        assert!(Instant::now() < deadline, "the welcome never went out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = TestApp::at(&second.base);
    let list = t
        .get(&format!("/admin/v1/apps/{}/messages", c.app), OPERATOR)
        .await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.received().len(), 1, "the welcome went out twice");
    assert_eq!(
        read_message(&smtp.received()[0])["subject"],
        "Welcome to Pantry Club"
    );
}

/// The messages written to an outbox directory (`.eml` files), in the order they were
/// queued, once there are at least `n`, each read as [`read_message`] does.
pub async fn outbox_messages(dir: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Named by message id (UUIDv7): in the order they were queued.
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        if files.len() >= n {
            files.sort();
            return files.iter().map(|p| read_message(p)).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} messages were written to {}",
            files.len(),
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first link in a message's text that goes to `page`.
pub fn link_to(text: &str, page: &str) -> String {
    text.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains(&format!("/{page}?token=")))
        .unwrap_or_else(|| panic!("no link to {page} in: {text}"))
        .to_owned()
}

/// An admin's `POST …/welcome-email` for the configured app's member, answered 202.
async fn welcome_again(t: &TestApp, c: &crate::support::Configured) -> crate::support::Answer {
    let again = t
        .post(
            &format!(
                "/admin/v1/apps/{}/members/{}/welcome-email",
                c.app, c.member
            ),
            &c.key,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    again
}

/// Waits until the app's messages all left the queue; returns them.
pub async fn settled_messages(t: &TestApp, app: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = t
            .get(&format!("/admin/v1/apps/{app}/messages"), OPERATOR)
            .await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        let queued = list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["status"] == "queued");
        if !queued {
            return list.body;
        }
        assert!(
            Instant::now() < deadline,
            "messages stayed queued: {}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn admins_see_messages_and_can_send_a_welcome_again(backend: crate::support::Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("Pantry Club").await;
    let list = settled_messages(&t, &c.app).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let welcome = &items[0];
    assert_eq!(welcome["kind"], "welcome");
    assert_eq!(welcome["status"], "sent");
    assert_eq!(welcome["member_id"], c.member.as_str());
    assert_eq!(welcome["attempts"], 1);
    assert!(welcome["sent_at"].is_string());
    assert!(welcome["last_error"].is_null());
    assert!(
        !list.to_string().contains("li_"),
        "a link token is shown: {list}"
    );

    // A welcome by hand, and an invitation (emailed too): the member's list has all three.
    let again = welcome_again(&t, &c).await;
    assert_eq!(again.body["kind"], "welcome");
    let invited = t
        .post(
            &format!("/admin/v1/apps/{}/members/{}/invitations", c.app, c.member),
            &c.key,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    settled_messages(&t, &c.app).await;
    let theirs = t
        .get(
            &format!("/admin/v1/apps/{}/members/{}/messages", c.app, c.member),
            &c.key,
        )
        .await;
    let kinds: Vec<&str> = theirs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["invitation", "welcome", "welcome"],
        "{}",
        theirs.body
    );
    let welcomes = t
        .get(
            &format!("/admin/v1/apps/{}/messages?kind=welcome&status=sent", c.app),
            &c.key,
        )
        .await;
    assert_eq!(welcomes.body["items"].as_array().unwrap().len(), 2);
    let unknown = t
        .get(
            &format!(
                "/admin/v1/apps/{}/members/{}/messages",
                c.app,
                uuid::Uuid::now_v7()
            ),
            &c.key,
        )
        .await;
    unknown.assert_error(404, "not_found");
    let bad = t
        .get(
            &format!("/admin/v1/apps/{}/messages?kind=fax", c.app),
            &c.key,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

async fn member_settings_shape_what_members_receive(backend: crate::support::Backend) {
    let t = TestApp::spawn(backend).await;
    let c = t.configured_app("Pantry Club").await;
    let path = format!("/admin/v1/apps/{}/member-settings", c.app);
    let defaults = t.get(&path, &c.key).await;
    assert_eq!(defaults.status, StatusCode::OK, "{}", defaults.body);
    assert_eq!(
        defaults.body,
        serde_json::json!({
            "member_url": null, "sender_name": null, "reply_to": null,
            "welcome_email": "set_password", "welcome_for_test_purchases": false,
            "subject_template": null, "body_template": null, "cors_origins": []
        })
    );
    let changed = t
        .patch(
            &path,
            &c.key,
            serde_json::json!({
                "member_url": "https://members.example.com/",
                "sender_name": "Pantry Club",
                "reply_to": "Help@Example.com",
                "subject_template": "Hi {{member_name}}",
                "cors_origins": ["https://Members.example.com", "http://localhost:5173"]
            }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["member_url"], "https://members.example.com");
    assert_eq!(changed.body["reply_to"], "help@example.com");
    assert_eq!(
        changed.body["cors_origins"],
        serde_json::json!(["https://members.example.com", "http://localhost:5173"])
    );
    assert_eq!(t.get(&path, &c.key).await.body, changed.body);

    // Wrong values are refused, naming the field, and change nothing.
    for (body, field) in [
        (serde_json::json!({"member_url": "ftp://x"}), "member_url"),
        (serde_json::json!({"reply_to": "nobody"}), "reply_to"),
        (
            serde_json::json!({"cors_origins": ["https://x.com/app"]}),
            "cors_origins",
        ),
        (
            serde_json::json!({"sender_name": "a\nBcc: b"}),
            "sender_name",
        ),
        (
            serde_json::json!({"welcome_email": "sometimes"}),
            "welcome_email",
        ),
        (serde_json::json!({"welcom_email": "off"}), "welcom_email"),
    ] {
        let refused = t.patch(&path, &c.key, body.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            refused.body
        );
        assert_eq!(refused.body["field"], field, "{}", refused.body);
    }
    assert_eq!(t.get(&path, &c.key).await.body, changed.body);

    // null clears; the welcome link now goes to the app's own front end.
    let cleared = t
        .patch(&path, &c.key, serde_json::json!({"subject_template": null}))
        .await;
    assert!(cleared.body["subject_template"].is_null());
    welcome_again(&t, &c).await;
    settled_messages(&t, &c.app).await;
    let sent = outbox_messages(&t.outbox_dir, 2).await;
    let text = sent[1]["text"].as_str().unwrap();
    assert!(
        link_to(text, "set-password")
            .starts_with("https://members.example.com/set-password?token=li_"),
        "{text}"
    );
    assert_eq!(sent[1]["subject"], "Welcome to Pantry Club");

    // Welcomes off: a new buyer gets none.
    t.patch(&path, &c.key, serde_json::json!({"welcome_email": "off"}))
        .await;
    let mut other = purchase("7730001");
    other["customer"]["email"] = "new.buyer@example.com".into();
    let webhook = c.webhook_url.replace("https://larder.test", &t.base);
    let applied = t.raw(t.client().post(&webhook).json(&other)).await;
    assert_eq!(applied.body["status"], "applied", "{}", applied.body);
    let list = settled_messages(&t, &c.app).await;
    let to: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    assert!(!to.contains(&"new.buyer@example.com"), "{list}");
}

crate::on_both_backends!(
    admins_see_messages_and_can_send_a_welcome_again,
    member_settings_shape_what_members_receive,
);
