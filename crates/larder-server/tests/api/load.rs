//! The load-test tools of `load-tests/` work, end to end and small: apps made through the
//! admin API, a corpus with repeats and wrong secret words, `larder-loadgen` sending it
//! (twice), and the check through the admin API passing, and failing on a wrong
//! expectation. The benchmark itself (`load-tests/run.sh`) is run by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Backend, OPERATOR, TestApp};

fn load_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../load-tests")
}

fn python(script: &str, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(load_tests().join(script))
        .args(args)
        .output()
        .expect("python3 runs")
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn the_load_tools_send_a_corpus_and_check_every_delivery(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let dir = tempdir();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (apps, corpus, expected) = (
        file("apps.json"),
        file("corpus.jsonl"),
        file("expected.json"),
    );
    // The tools are blocking programs: run them off the server's runtime.
    let base = t.base.clone();
    let (a, c, e) = (apps.clone(), corpus.clone(), expected.clone());
    tokio::task::spawn_blocking(move || {
        ok(
            python(
                "setup.py",
                &[
                    "--base",
                    &base,
                    "--operator",
                    OPERATOR,
                    "--apps",
                    "3",
                    "--out",
                    &a,
                ],
            ),
            "setup.py",
        );
        ok(
            python(
                "corpus.py",
                &[
                    "--apps",
                    &a,
                    "--customers",
                    "12",
                    "--out",
                    &c,
                    "--expected",
                    &e,
                    "--repeats",
                    "0.1",
                    "--wrong-secrets",
                    "0.05",
                ],
            ),
            "corpus.py",
        );
        for _ in 0..2 {
            let sent = ok(
                Command::new(env!("CARGO_BIN_EXE_larder-loadgen"))
                    .args(["--base", &base, "--corpus", &c, "--connections", "8"])
                    .output()
                    .unwrap(),
                "larder-loadgen",
            );
            let summary: serde_json::Value = serde_json::from_str(sent.trim()).unwrap();
            let statuses = summary["statuses"].as_object().unwrap();
            assert!(
                statuses.keys().all(|s| s == "200" || s == "401"),
                "{summary}"
            );
        }
        let checked = ok(
            python(
                "verify.py",
                &[
                    "--base",
                    &base,
                    "--apps",
                    &a,
                    "--expected",
                    &e,
                    "--sent",
                    "2",
                ],
            ),
            "verify.py",
        );
        assert!(checked.contains("nothing lost"), "{checked}");
        // A wrong expectation is caught: one grant said to stand otherwise.
        let mut want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&e).unwrap()).unwrap();
        let first = want.as_object_mut().unwrap().values_mut().next().unwrap();
        let status = &mut first["items"][0][3];
        *status = if status == "revoked" {
            "active"
        } else {
            "revoked"
        }
        .into();
        let wrong = format!("{e}.wrong");
        std::fs::write(&wrong, want.to_string()).unwrap();
        let caught = python(
            "verify.py",
            &[
                "--base",
                &base,
                "--apps",
                &a,
                "--expected",
                &wrong,
                "--sent",
                "2",
            ],
        );
        assert!(!caught.status.success(), "verify.py missed a wrong grant");
        assert!(String::from_utf8_lossy(&caught.stderr).contains("grants differ"));
    })
    .await
    .unwrap();
}

fn tempdir() -> PathBuf {
    let dir = larder_testkit::fresh_sqlite_path()
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

crate::on_both_backends!(the_load_tools_send_a_corpus_and_check_every_delivery);
