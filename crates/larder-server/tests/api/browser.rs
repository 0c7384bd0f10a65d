//! The member's whole way in, as a buyer meets it: a purchase posted to the webhook, the
//! welcome email received by a real SMTP server (aiosmtpd), its link opened in a real
//! browser (Debian's headless Chromium, driven by playwright-core from the pinned tools), a
//! password set, the member signed in and seeing their access; then a magic link asked for
//! on the sign-in page and used, and a forgotten password reset. On both stores.
//!
//! The browser side is `tests/browser/member_pages.cjs`. It finds every field by its label
//! and fails on any console error (a Content-Security-Policy violation is one). A
//! screenshot of each page is kept under the target directory's
//! `tmp/member-pages/<backend>/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::mail::{SmtpServer, link_to, read_message};
use crate::support::{Backend, TestApp, settings};

/// Runs one scene of the browser script; what the pages showed.
async fn scene(name: &str, args: Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/member_pages.cjs");
    let node_tools = larder_testkit::pinned_tool("node");
    larder_testkit::pinned_tool("node/node_modules/playwright-core/package.json");
    let chromium = std::env::var("LARDER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (apt-get install chromium); .ci/run does"
    );
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .arg(name)
        .arg(args.to_string())
        .env("LARDER_TOOLS_NODE", &node_tools)
        .env("LARDER_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser scene finishes within two minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scene {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("the scene's report");
    assert_eq!(seen["problems"], json!([]), "scene {name}: {seen}");
    seen
}

fn page<'a>(seen: &'a Value, name: &str) -> &'a Value {
    seen["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no page {name} in {seen}"))
}

fn shots_dir(backend: Backend) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("member-pages")
        .join(format!("{backend:?}").to_lowercase());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn a_buyer_gets_in_from_the_welcome_email(backend: Backend) {
    let smtp = SmtpServer::start();
    let mut s = settings(backend).await;
    s.smtp_url = Some(smtp.url());
    let t = TestApp::spawn_reachable(s).await;
    let shots = shots_dir(backend);
    // The purchase, through the webhook.
    let c = t.configured_app("Pantry Club").await;
    let welcome = read_message(&smtp.wait_for(1).await[0]);
    assert_eq!(welcome["subject"], "Welcome to Pantry Club");
    let text = welcome["text"].as_str().unwrap();
    assert!(text.contains("access to: Gold."), "{text}");
    let link = link_to(text, "set-password");
    assert!(
        link.starts_with(&format!(
            "{}/members/{}/set-password?token=li_",
            t.base, c.app
        )),
        "{link}"
    );
    let to = welcome["to"].as_str().unwrap();
    let email = to.rsplit('<').next().unwrap().trim_end_matches('>');
    let common = json!({
        "base": t.base, "app": c.app, "email": email,
        "shots": shots.display().to_string(),
    });
    let with = |extra: Value| {
        let mut args = common.clone();
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        args
    };

    // The welcome's link: a password, then signed in, seeing the access.
    let seen = scene(
        "welcome",
        with(json!({"link": link, "password": "a welcome passphrase"})),
    )
    .await;
    let set = page(&seen, "set-password");
    assert_eq!(set["h1"], "Set your password");
    assert_eq!(set["header"], "Pantry Club");
    assert_eq!(set["title"], "Set your password · Pantry Club");
    for name in ["signed-in", "signed-in-again"] {
        let home = page(&seen, name);
        assert_eq!(home["h1"], "Your membership", "{home}");
        assert_eq!(home["items"], json!(["Gold"]), "{home}");
        assert!(
            home["notices"][0].as_str().unwrap().contains(email),
            "{home}"
        );
    }
    assert_eq!(page(&seen, "sign-in")["h1"], "Sign in");
    let used = page(&seen, "used-link");
    assert_eq!(used["h1"], "This link no longer works", "{used}");

    // A magic link, asked for on the sign-in page.
    let seen = scene("ask-magic", common.clone()).await;
    let check = page(&seen, "check-email");
    assert_eq!(check["h1"], "Check your email");
    assert!(check["notices"][0].as_str().unwrap().contains(email));
    let magic = read_message(&smtp.wait_for(2).await[1]);
    assert_eq!(magic["subject"], "Your sign-in link for Pantry Club");
    let link = link_to(magic["text"].as_str().unwrap(), "magic");
    let seen = scene("magic", with(json!({"link": link}))).await;
    assert_eq!(page(&seen, "confirm")["h1"], "Sign in to Pantry Club");
    assert_eq!(page(&seen, "signed-in")["items"], json!(["Gold"]));

    // A forgotten password.
    let seen = scene("ask-reset", common.clone()).await;
    assert_eq!(page(&seen, "reset-password")["h1"], "Reset your password");
    assert_eq!(page(&seen, "check-email")["h1"], "Check your email");
    let reset = read_message(&smtp.wait_for(3).await[2]);
    assert_eq!(reset["subject"], "Reset your Pantry Club password");
    let link = link_to(reset["text"].as_str().unwrap(), "reset-password");
    let seen = scene(
        "reset",
        with(json!({"link": link, "password": "a fresh passphrase"})),
    )
    .await;
    assert_eq!(
        page(&seen, "choose-password")["h1"],
        "Choose a new password"
    );
    assert_eq!(page(&seen, "signed-in-again")["items"], json!(["Gold"]));

    // Every page was photographed.
    let shots_path = shots;
    let shots: Vec<_> = std::fs::read_dir(&shots_path).unwrap().collect();
    assert_eq!(shots.len(), 13, "screenshots in {}", shots_path.display());
    // Three messages, each sent once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 3);
}

crate::on_both_backends!(a_buyer_gets_in_from_the_welcome_email);
