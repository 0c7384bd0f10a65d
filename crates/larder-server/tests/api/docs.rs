//! Documentation that must not drift from the code: `docs/configuration.md` against
//! `larder serve --help` and `larder migrate --help`, and `helm/larder/README.md` against the
//! chart's values.

use std::collections::BTreeMap;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Each `[env: NAME]` of a help text, with its flag and default (`None` when it has none).
fn help_settings(command: &str) -> BTreeMap<String, (String, Option<String>)> {
    let out = std::process::Command::new(crate::processes::BIN)
        .args([command, "--help"])
        .env_clear()
        .output()
        .expect("larder runs");
    let help = String::from_utf8(out.stdout).unwrap();
    // clap puts each option on a line of its own, its description on the next (long help).
    let mut settings = BTreeMap::new();
    let mut flag = None;
    for line in help.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("--") {
            let name = rest.split([' ', '<']).next().unwrap_or_default();
            flag = Some(format!("--{name}"));
        }
        let Some(start) = line.find("[env: ") else {
            continue;
        };
        let env = line[start + 6..]
            .split([']', '='])
            .next()
            .unwrap()
            .to_owned();
        let default = line
            .find("[default: ")
            .map(|d| line[d + 10..].split(']').next().unwrap().to_owned());
        settings.insert(env, (flag.clone().expect("a flag before its env"), default));
    }
    assert!(!settings.is_empty(), "no settings in:\n{help}");
    settings
}

/// The rows of the table under `## heading` in a markdown file: first three cells of each.
fn doc_settings(markdown: &str, heading: &str) -> BTreeMap<String, (String, String)> {
    let section = markdown
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("no section {heading}"));
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let unquote = |c: &str| c.trim_matches('`').to_owned();
            (unquote(cells[1]), (unquote(cells[2]), cells[3].to_owned()))
        })
        .collect()
}

#[test]
fn the_configuration_page_lists_every_setting_as_the_help_does() {
    let page = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    for (command, heading) in [("serve", "`larder serve`"), ("migrate", "`larder migrate`")] {
        let help = help_settings(command);
        let documented = doc_settings(&page, heading);
        let help_vars: Vec<&String> = help.keys().collect();
        let doc_vars: Vec<&String> = documented.keys().collect();
        assert_eq!(doc_vars, help_vars, "{command}: the variables differ");
        for (var, (flag, default)) in &help {
            let (doc_flag, doc_default) = &documented[var];
            assert_eq!(doc_flag, flag, "{command} {var}: the flag differs");
            match default {
                Some(default) => assert!(
                    doc_default.starts_with(&format!("`{default}`")),
                    "{command} {var}: the help says the default is `{default}`, the page {doc_default}"
                ),
                None => assert!(
                    doc_default.starts_with("unset"),
                    "{command} {var}: no default in the help, the page says {doc_default}"
                ),
            }
        }
    }
}

/// The dotted path of every leaf of a values file (lists are leaves).
fn leaves(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn the_chart_readme_documents_every_value() {
    let values = std::process::Command::new(larder_testkit::pinned_tool("venv/bin/python"))
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(root().join("helm/larder/values.yaml"))
        .output()
        .expect("python runs");
    assert!(values.status.success());
    let values: serde_json::Value = serde_json::from_slice(&values.stdout).unwrap();
    let mut paths = Vec::new();
    leaves(&values, "", &mut paths);
    let readme = std::fs::read_to_string(root().join("helm/larder/README.md")).unwrap();
    // A value documented as a whole (`resources`, a Kubernetes object) covers its keys.
    let documented = |path: &str| {
        let parts: Vec<&str> = path.split('.').collect();
        (1..=parts.len()).any(|n| readme.contains(&format!("| `{}` |", parts[..n].join("."))))
    };
    for path in paths {
        assert!(
            documented(&path),
            "helm/larder/README.md does not document `{path}`"
        );
    }
}
