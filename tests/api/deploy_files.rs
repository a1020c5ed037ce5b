//! The deploy files (`deploy/`) against the product they deploy: every
//! series the Grafana dashboard and the alert rules query exists in
//! `/metrics` of a running clickback, with the labels they select and group
//! by; the Kubernetes manifests and the compose file hang together and set
//! only variables clickback reads; the image's health check
//! (`clickback --healthcheck`) tells a serving instance from a missing one.
//! `deploy/check.sh` adds what needs outside tools (promtool, schemas).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;
use crate::shutdown::Clickback;

/// `deploy/<path>` as text.
fn deploy_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `deploy/<path>`, a YAML file, as a JSON value, with its merge keys
/// (`<<: *anchor`) applied as Docker Compose applies them.
fn deploy_yaml(path: &str) -> Value {
    let mut yaml: serde_norway::Value =
        serde_norway::from_str(&deploy_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml.apply_merge()
        .unwrap_or_else(|e| panic!("{path}: merge keys: {e}"));
    serde_json::to_value(yaml).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every PromQL query of the dashboard: panels' `expr` and the template
/// variables' `definition`, wherever they are nested.
fn dashboard_queries() -> Vec<String> {
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("expr" | "definition", Value::String(query)) => found.push(query.clone()),
                        _ => walk(inner, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let dashboard: Value =
        serde_json::from_str(&deploy_file("grafana/clickback.json")).expect("dashboard is JSON");
    let mut found = Vec::new();
    walk(&dashboard, &mut found);
    found
}

/// Every alert rule as (name, expression).
fn alert_rules() -> Vec<(String, String)> {
    let rules = deploy_yaml("prometheus/alerts.yaml");
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").iter())
        .map(|rule| {
            (
                rule["alert"].as_str().expect("alert name").to_owned(),
                rule["expr"].as_str().expect("expr").to_owned(),
            )
        })
        .collect()
}

/// One `metric{label op "value", …}` of a query.
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Splits `text` at each `separator` outside double quotes, up to the first
/// unquoted `close`; returns the pieces and the byte length consumed.
fn split_unquoted(text: &str, separator: char, close: char) -> (Vec<&str>, usize) {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if quoted => {}
            _ if c == close => {
                pieces.push(&text[start..at]);
                return (pieces, at);
            }
            _ if c == separator => {
                pieces.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    panic!("no closing {close:?} in {text:?}")
}

/// The `clickback_*` selectors of a PromQL query, with their matchers.
fn selectors(query: &str) -> Vec<Selector> {
    let mut found = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("clickback_") {
        let preceded_by_name = rest[..at].chars().next_back().is_some_and(is_name_char);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !is_name_char(c)).unwrap_or(tail.len());
        let metric = tail[..end].to_owned();
        let after = tail[end..].trim_start();
        let mut matchers = Vec::new();
        if let Some(inner) = after.strip_prefix('{') {
            let (pieces, _) = split_unquoted(inner, ',', '}');
            for matcher in pieces.into_iter().filter(|m| !m.trim().is_empty()) {
                let op_at = matcher.find(['=', '!']).expect("a matcher has an operator");
                let label = matcher[..op_at].trim().to_owned();
                let op_len = if matcher[op_at..].starts_with("=~")
                    || matcher[op_at..].starts_with("!~")
                    || matcher[op_at..].starts_with("!=")
                {
                    2
                } else {
                    1
                };
                let op = matcher[op_at..op_at + op_len].to_owned();
                let value = matcher[op_at + op_len..]
                    .trim()
                    .trim_matches('"')
                    .to_owned();
                matchers.push((label, op, value));
            }
        }
        if !preceded_by_name {
            found.push(Selector { metric, matchers });
        }
        rest = &tail[end..];
    }
    found
}

/// The labels of every `by (…)` and `without (…)` of a query, and the label
/// argument of Grafana's `label_values(metric, label)`.
fn grouping_labels(query: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for keyword in ["by", "without"] {
        let mut rest = query;
        while let Some(at) = rest.find(keyword) {
            let before_ok = !rest[..at].chars().next_back().is_some_and(is_name_char);
            let tail = rest[at + keyword.len()..].trim_start();
            if before_ok {
                if let Some(inner) = tail.strip_prefix('(') {
                    let close = inner.find(')').expect("grouping closes");
                    labels.extend(
                        inner[..close]
                            .split(',')
                            .map(|l| l.trim().to_owned())
                            .filter(|l| !l.is_empty()),
                    );
                }
            }
            rest = &rest[at + keyword.len()..];
        }
    }
    if let Some(inner) = query.strip_prefix("label_values(") {
        if let Some((_, label)) = inner.trim_end_matches(')').rsplit_once(',') {
            labels.push(label.trim().to_owned());
        }
    }
    labels
}

/// Sample names of a Prometheus text exposition, each with its labels and
/// the values seen for each.
fn exposition(text: &str) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut series: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = series.entry(line[..end].to_owned()).or_default();
        if let Some(inner) = line[end..].strip_prefix('{') {
            for pair in split_unquoted(inner, ',', '}').0 {
                if let Some((label, value)) = pair.split_once('=') {
                    labels
                        .entry(label.trim().to_owned())
                        .or_default()
                        .insert(value.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    series
}

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Label values a test app shows only after the event they count, as
/// `src/metrics.rs` documents them; any other label value a query selects
/// must appear in the exposition of the exercised app.
fn documented_values(metric: &str, label: &str) -> &'static [&'static str] {
    match (metric, label) {
        ("clickback_clicks_total", "result") => &[
            "tracked",
            "declined",
            "bot",
            "capped",
            "store_error",
            "unknown_offer",
            "unknown_affiliate",
            "invalid",
        ],
        ("clickback_postbacks_total", "result") => &[
            "credited",
            "pending",
            "duplicate",
            "updated",
            "rejected",
            "unknown_click",
            "invalid_token",
            "invalid",
            "ip_not_allowed",
            "invalid_signature",
            "replayed",
            "in_flight",
            "contended",
            "store_error",
        ],
        _ => &[],
    }
}

/// Labels whose values are the operator's (offers, currencies) or open-ended.
const OPEN_LABELS: [&str; 4] = ["offer", "currency", "method", "status"];

/// What is wrong with `query` against the exposition `series`, if anything.
fn problems(
    query: &str,
    series: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let found = selectors(query);
    let mut labels_in_query: BTreeSet<String> =
        TARGET_LABELS.iter().map(|l| l.to_string()).collect();
    for selector in &found {
        let Some(labels) = series.get(&selector.metric) else {
            problems.push(format!("{} is not in /metrics", selector.metric));
            continue;
        };
        labels_in_query.extend(labels.keys().cloned());
        for (label, op, value) in &selector.matchers {
            if TARGET_LABELS.contains(&label.as_str()) {
                continue;
            }
            let Some(seen) = labels.get(label) else {
                problems.push(format!("{} has no label {label}", selector.metric));
                continue;
            };
            if OPEN_LABELS.contains(&label.as_str()) || value.contains('$') {
                continue;
            }
            let wanted: Vec<&str> = match op.as_str() {
                "=" | "!=" => vec![value.as_str()],
                _ => value.split('|').collect(),
            };
            let documented = documented_values(&selector.metric, label);
            for wanted in wanted {
                if !seen.contains(wanted) && !documented.contains(&wanted) {
                    problems.push(format!(
                        "{}{{{label}}} never takes the value {wanted:?} (seen: {seen:?})",
                        selector.metric
                    ));
                }
            }
        }
    }
    for label in grouping_labels(query) {
        if !labels_in_query.contains(&label) {
            problems.push(format!(
                "groups by {label}, which none of its series carries"
            ));
        }
    }
    problems
}

/// A clickback on Redis that has seen a tracked click, a click on an
/// unknown offer, a credited postback, a refused one and a request without
/// credentials: every family of `/metrics` has its samples.
async fn exercised_metrics() -> String {
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;
    let click_id = app.click_id("o1", "a1").await;
    postback_ok(&app, &click_id, "txid=deploy-1").await;
    app.postback(&format!(
        "click_id={click_id}&token=wrong-token&txid=deploy-2"
    ))
    .await;
    app.click("nope", "aff_id=a1").await;
    app.get("/api/v1/offers").await;
    app.metrics().await
}

#[tokio::test]
async fn every_series_the_dashboard_queries_exists_in_metrics_with_its_labels() {
    // Arrange
    let series = exposition(&exercised_metrics().await);
    let queries = dashboard_queries();

    // Act
    let mut problems_found = Vec::new();
    for query in &queries {
        for problem in problems(query, &series) {
            problems_found.push(format!("{problem}\n    in {query}"));
        }
    }

    // Assert
    assert!(
        problems_found.is_empty(),
        "the dashboard queries what clickback does not export:\n{}",
        problems_found.join("\n")
    );
    let queried: BTreeSet<String> = queries
        .iter()
        .flat_map(|q| selectors(q))
        .map(|s| s.metric)
        .collect();
    for panel_metric in [
        "clickback_clicks_total",
        "clickback_postbacks_total",
        "clickback_conversions_total",
        "clickback_payout_total",
        "clickback_http_request_duration_seconds_bucket",
        "clickback_store_errors_total",
        "clickback_delivery_queue_pending",
        "clickback_delivery_oldest_pending_seconds",
    ] {
        assert!(
            queried.contains(panel_metric),
            "no panel shows {panel_metric}"
        );
    }
}

#[tokio::test]
async fn every_series_the_alert_rules_query_exists_in_metrics_with_its_labels() {
    // Arrange
    let series = exposition(&exercised_metrics().await);
    let rules = alert_rules();

    // Act
    let mut problems_found = Vec::new();
    for (alert, expr) in &rules {
        for problem in problems(expr, &series) {
            problems_found.push(format!("{alert}: {problem}"));
        }
    }

    // Assert
    assert!(
        problems_found.is_empty(),
        "alert rules query what clickback does not export:\n{}",
        problems_found.join("\n")
    );
    let names: BTreeSet<&str> = rules.iter().map(|(name, _)| name.as_str()).collect();
    for alert in [
        "ClickbackDown",
        "ClickbackNotReady",
        "ClickbackStoreErrors",
        "ClickbackRedirectLatencyHigh",
        "ClickbackPostbackRefusalSpike",
        "ClickbackDeliveryBacklog",
    ] {
        assert!(names.contains(alert), "no alert {alert} in {names:?}");
    }
}

#[test]
fn a_query_naming_a_missing_series_or_label_is_caught() {
    // Arrange: an exposition with one family.
    let series = exposition(
        "# TYPE clickback_store_errors_total counter\n\
         clickback_store_errors_total{operation=\"ping\"} 0\n",
    );

    // Act
    let typo = problems("rate(clickback_store_error_total[5m])", &series);
    let wrong_label = problems(
        "sum by (op) (rate(clickback_store_errors_total{operation=\"pong\"}[5m]))",
        &series,
    );
    let fine = problems(
        "sum by (instance, operation) (rate(clickback_store_errors_total{operation=\"ping\"}[5m]))",
        &series,
    );

    // Assert
    assert_eq!(typo.len(), 1, "{typo:?}");
    assert_eq!(wrong_label.len(), 2, "{wrong_label:?}");
    assert!(fine.is_empty(), "{fine:?}");
}

/// The variables a manifest or compose service sets, as strings.
fn variable_names(map: &Value) -> Vec<String> {
    map.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// A number of seconds from a `CLICKBACK_*` value of the config map.
fn seconds(value: &Value, unit_ms: bool) -> u64 {
    let n: u64 = value
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {value}"));
    if unit_ms {
        n.div_ceil(1000)
    } else {
        n
    }
}

#[test]
fn the_kubernetes_manifests_probe_serve_and_stop_clickback_as_it_works() {
    // Arrange
    let kustomization = deploy_yaml("k8s/kustomization.yaml");
    let deployment = deploy_yaml("k8s/deployment.yaml");
    let service = deploy_yaml("k8s/service.yaml");
    let monitor = deploy_yaml("k8s/servicemonitor.yaml");
    let config = deploy_yaml("k8s/configmap.yaml");
    let secret = deploy_yaml("k8s/secret.example.yaml");
    let pdb = deploy_yaml("k8s/pdb.yaml");
    let hpa = deploy_yaml("k8s/hpa.yaml");
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];

    // Act
    let listen_port: u64 = config["data"]["CLICKBACK_LISTEN"]
        .as_str()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("CLICKBACK_LISTEN has a port");
    let stop_needs = pod["spec"]["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("a preStop pause")
        + seconds(&config["data"]["CLICKBACK_SHUTDOWN_TIMEOUT_SECS"], false)
        + seconds(&config["data"]["CLICKBACK_DELIVERY_TIMEOUT_MS"], true);
    let known: BTreeSet<&str> = clickback::config::VARIABLES
        .iter()
        .map(|v| v.name)
        .collect();

    // Assert: every listed resource exists.
    for resource in kustomization["resources"].as_array().expect("resources") {
        let file = resource.as_str().expect("a file name");
        deploy_yaml(&format!("k8s/{file}"));
    }
    // Probes: readiness on /readyz, liveness on /healthz, on the port clickback listens on.
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["ports"][0]["name"], "http");
    assert_eq!(container["ports"][0]["containerPort"], listen_port);
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe}");
    }
    // The Service and the ServiceMonitor reach the pods' named port.
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    // Selectors match the pods' labels; the PDB and HPA name the Deployment.
    let pod_labels = &pod["metadata"]["labels"];
    for selector in [
        &deployment["spec"]["selector"]["matchLabels"],
        &service["spec"]["selector"],
        &pdb["spec"]["selector"]["matchLabels"],
    ] {
        for (label, value) in selector.as_object().expect("a selector") {
            assert_eq!(&pod_labels[label], value, "pods lack {label}={value}");
        }
    }
    for (label, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("monitor selector")
    {
        assert_eq!(&service["metadata"]["labels"][label], value);
    }
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    // The kubelet's SIGKILL comes after the pause, the drain and the deliveries' drain.
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("a grace period");
    assert!(
        grace > stop_needs,
        "terminationGracePeriodSeconds {grace} does not cover {stop_needs} s of shutdown"
    );
    // The image's user is not root, and every variable set is one clickback reads.
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert!(
        deploy_file("Dockerfile").contains(&format!(
            "USER {}",
            pod["spec"]["securityContext"]["runAsUser"]
        )),
        "the Dockerfile's USER is not the pod's runAsUser"
    );
    for name in variable_names(&config["data"])
        .into_iter()
        .chain(variable_names(&secret["stringData"]))
    {
        assert!(
            known.contains(name.as_str()),
            "{name} is not a variable clickback reads"
        );
    }
}

#[test]
fn the_compose_stack_sets_only_variables_clickback_reads_and_waits_long_enough_to_stop() {
    // Arrange
    let compose = deploy_yaml("compose.yaml");
    let known: BTreeSet<&str> = clickback::config::VARIABLES
        .iter()
        .map(|v| v.name)
        .collect();

    // Act
    let instances: Vec<(&String, &Value)> = compose["services"]
        .as_object()
        .expect("services")
        .iter()
        .filter(|(name, _)| name.starts_with("clickback-"))
        .collect();

    // Assert
    assert_eq!(instances.len(), 2, "two clickback instances");
    for (name, service) in instances {
        let env = &service["environment"];
        for variable in variable_names(env) {
            assert!(
                known.contains(variable.as_str()),
                "{name} sets {variable}, which clickback does not read"
            );
        }
        let grace: u64 = service["stop_grace_period"]
            .as_str()
            .and_then(|g| g.strip_suffix('s'))
            .and_then(|g| g.parse().ok())
            .expect("stop_grace_period in seconds");
        let needs = seconds(&env["CLICKBACK_SHUTDOWN_TIMEOUT_SECS"], false) + 10;
        assert!(grace > needs, "{name}: {grace} s to stop, needs {needs} s");
    }
    assert!(
        compose["services"]["redis"]["command"]
            .as_array()
            .expect("redis command")
            .iter()
            .any(|arg| arg == "/usr/local/etc/redis/redis.conf"),
        "Redis runs without deploy/redis.conf"
    );
    assert!(deploy_file("redis.conf").contains("appendfsync everysec"));
}

/// `clickback --healthcheck` with `CLICKBACK_LISTEN=listen` and nothing
/// else: its exit code and stderr.
fn healthcheck(listen: &str) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_clickback"))
        .arg("--healthcheck")
        .env_clear()
        .env("CLICKBACK_LISTEN", listen)
        .stdin(Stdio::null())
        .output()
        .expect("clickback --healthcheck runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_healthcheck_flag_exits_zero_while_clickback_serves_on_its_listen_address() {
    // Arrange: the wildcard address the image listens on, and the port.
    let clickback = Clickback::start(&[]);
    let listen = format!("0.0.0.0:{}", clickback.port);

    // Act
    let healthy = eventually(Duration::from_secs(20), || {
        let listen = listen.clone();
        async move {
            tokio::task::spawn_blocking(move || healthcheck(&listen).0 == Some(0))
                .await
                .expect("health check thread")
        }
    })
    .await;

    // Assert
    assert!(
        healthy.is_some(),
        "--healthcheck never passed: {:?}\n{}",
        healthcheck(&listen),
        clickback.log()
    );
}

#[test]
fn the_healthcheck_flag_exits_one_in_one_line_when_nothing_listens() {
    // Arrange: a port bound, then let go.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = listener.local_addr().expect("address").to_string();
    drop(listener);

    // Act
    let (code, stderr) = healthcheck(&listen);

    // Assert: 1 (unhealthy; Docker reserves 2), naming the address.
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("clickback: "), "{stderr}");
    assert!(stderr.contains(&listen), "{stderr}");
}
