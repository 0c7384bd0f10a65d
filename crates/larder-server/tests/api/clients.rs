//! The OpenAPI document as client developers take it: Redocly's `recommended` rules and
//! openapi-spec-validator find nothing wrong, and three widely used generators
//! (openapi-python-client, OpenAPI Generator's Python client, openapi-typescript with
//! openapi-fetch) make clients that drive the README's whole walk-through against a live
//! server (`openapi/clients/`). The tools are pinned in `.ci/tools` and installed by
//! `.ci/tools/install` into `$LARDER_TOOLS` (default `~/.cache/larder-tools`); a missing one
//! fails the test with that advice, never skips it.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Backend, OPERATOR, TestApp};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(relative: &str) -> PathBuf {
    larder_testkit::pinned_tool(relative)
}

fn document() -> PathBuf {
    root().join("openapi/larder.json")
}

/// Runs a command to its end; panics with everything it printed unless it succeeded.
async fn run(what: &str, command: &mut tokio::process::Command) -> Output {
    let out = command
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    out
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every operation id of the document.
fn operation_ids() -> Vec<String> {
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(document()).unwrap()).unwrap();
    spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap().to_owned())
        .collect()
}

fn snake_case(id: &str) -> String {
    let mut out = String::new();
    for c in id.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every file under `dir`, read as text.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&all_text(&path));
        } else if let Ok(t) = std::fs::read_to_string(&path) {
            text.push_str(&t);
        }
    }
    text
}

#[tokio::test]
async fn the_document_lints_clean() {
    let out = run(
        "redocly lint",
        tokio::process::Command::new(tool("node/node_modules/.bin/redocly"))
            .args(["lint", "--extends", "recommended", "--format", "stylish"])
            .arg(document()),
    )
    .await;
    let report = printed(&out);
    assert!(
        !report.contains(" error "),
        "Redocly reports errors:\n{report}"
    );
    run(
        "openapi-spec-validator",
        tokio::process::Command::new(tool("venv/bin/openapi-spec-validator")).arg(document()),
    )
    .await;
}

#[tokio::test]
async fn generated_clients_take_the_whole_walkthrough() {
    // Java and two generators keep both cores busy for a while.
    let _alone = crate::support::timing_sensitive().await;
    let work = larder_testkit::fresh_sqlite_path()
        .parent()
        .expect("a directory of its own")
        .to_owned();
    let clients = root().join("openapi/clients");
    let ids = operation_ids();
    assert!(ids.len() >= 40, "{ids:?}");

    // openapi-python-client drops what it cannot read with a warning: none is allowed.
    let python_client = work.join("openapi-python-client");
    let out = run(
        "openapi-python-client",
        tokio::process::Command::new(tool("venv/bin/openapi-python-client"))
            .arg("generate")
            .arg("--path")
            .arg(document())
            .arg("--output-path")
            .arg(&python_client)
            .arg("--config")
            .arg(clients.join("openapi-python-client.yaml")),
    )
    .await;
    let report = printed(&out);
    for sign in [
        "Warning",
        "WARNING",
        "Unable to",
        "will be omitted",
        "removal of",
    ] {
        assert!(!report.contains(sign), "openapi-python-client:\n{report}");
    }
    for id in &ids {
        assert!(
            python_client
                .join("larder_client/api")
                .read_dir()
                .unwrap()
                .any(|tag| tag
                    .unwrap()
                    .path()
                    .join(format!("{}.py", snake_case(id)))
                    .exists()),
            "openapi-python-client left out {id}"
        );
    }

    // OpenAPI Generator logs what it cannot do as ERROR.
    let generator_client = work.join("openapi-generator");
    let out = run(
        "openapi-generator-cli",
        tokio::process::Command::new(tool("venv/bin/openapi-generator-cli"))
            .args([
                "generate",
                "-g",
                "python",
                "--package-name",
                "larder_ogc",
                "-i",
            ])
            .arg(document())
            .arg("-o")
            .arg(&generator_client),
    )
    .await;
    let report = printed(&out);
    assert!(!report.contains("ERROR"), "OpenAPI Generator:\n{report}");
    let code = all_text(&generator_client.join("larder_ogc/api"));
    for id in &ids {
        assert!(
            code.contains(&format!("def {}(", snake_case(id))),
            "OpenAPI Generator left out {id}"
        );
    }

    // openapi-typescript's types, and the walk-through type-checked against them.
    let typescript = work.join("openapi-fetch");
    std::fs::create_dir_all(&typescript).unwrap();
    run(
        "openapi-typescript",
        tokio::process::Command::new(tool("node/node_modules/.bin/openapi-typescript"))
            .arg(document())
            .arg("-o")
            .arg(typescript.join("larder.d.ts")),
    )
    .await;
    for file in ["walkthrough_openapi_fetch.ts", "tsconfig.json"] {
        std::fs::copy(clients.join(file), typescript.join(file)).unwrap();
    }
    std::fs::write(typescript.join("package.json"), r#"{"type": "module"}"#).unwrap();
    std::os::unix::fs::symlink(tool("node/node_modules"), typescript.join("node_modules")).unwrap();
    run(
        "tsc",
        tokio::process::Command::new(tool("node/node_modules/.bin/tsc"))
            .arg("-p")
            .arg(&typescript),
    )
    .await;
    let compiled = typescript.join("out");
    std::fs::write(compiled.join("package.json"), r#"{"type": "module"}"#).unwrap();
    std::os::unix::fs::symlink(tool("node/node_modules"), compiled.join("node_modules")).unwrap();

    // Each client takes the whole walk-through against one live server, in apps of its own.
    let t = TestApp::spawn(Backend::Sqlite).await;
    let fixture = root()
        .join("crates/larder-testkit/fixtures/thrivecart/02-order-success-bump-and-upsell.json");
    let python = tool("venv/bin/python");
    let walks: [(&str, tokio::process::Command); 3] = [
        ("openapi-python-client", {
            let mut c = tokio::process::Command::new(&python);
            c.arg(clients.join("walkthrough_openapi_python_client.py"))
                .env("CLIENT_DIR", &python_client);
            c
        }),
        ("OpenAPI Generator", {
            let mut c = tokio::process::Command::new(&python);
            c.arg(clients.join("walkthrough_openapi_generator.py"))
                .env("CLIENT_DIR", &generator_client);
            c
        }),
        ("openapi-fetch", {
            let mut c = tokio::process::Command::new("node");
            c.arg(compiled.join("walkthrough_openapi_fetch.js"));
            c
        }),
    ];
    for (client, mut command) in walks {
        let out = run(
            &format!("the walk-through through {client}"),
            command
                .env("LARDER_URL", &t.base)
                .env("LARDER_OPERATOR_TOKEN", OPERATOR)
                .env("FIXTURE", &fixture),
        )
        .await;
        assert!(
            printed(&out).contains("walkthrough passed"),
            "{client}: {}",
            printed(&out)
        );
    }
}
