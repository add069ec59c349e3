//! Monitoring (issue 5, section 2): the PrometheusRule and ServiceMonitor, and the metrics
//! endpoint the alert reads; who may read it (issue 11, point 10); its serving certificate
//! rotated under load (issue 13).

use crate::cluster::{self, secs, tls, Operator, TestNs};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

/// Issue 5, section 2: in a cluster with the Prometheus operator's API, the operator (as its
/// service account) creates upstream's alert and the ServiceMonitor in its namespace at start,
/// and serves the metrics the alert reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_objects_created_when_the_api_exists() {
    cluster::install_fixture_crds("monitoring-crds.yaml").await;
    let t = TestNs::new("monitoring", 0).await;
    let op = Operator::start(&t);
    let rule =
        wait_monitoring_object(&t, "PrometheusRule", "prometheusrules", "file-integrity").await;
    let r = &rule.data["spec"]["groups"][0]["rules"][0];
    assert_eq!(r["alert"], "NodeHasIntegrityFailure", "{rule:?}");
    assert_eq!(r["labels"]["namespace"], t.ns.as_str());
    let monitor = wait_monitoring_object(&t, "ServiceMonitor", "servicemonitors", "metrics").await;
    assert_eq!(
        monitor.data["spec"]["endpoints"][1]["tlsConfig"]["serverName"],
        format!("metrics.{}.svc", t.ns).as_str()
    );
    let managers = crate::support::field_managers(&rule.metadata);
    assert!(managers.iter().any(|m| m == "fio-operator"), "{managers:?}");
    let text = op.metrics().await;
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

async fn wait_monitoring_object(t: &TestNs, kind: &str, plural: &str, name: &str) -> DynamicObject {
    let gvk = GroupVersionKind::gvk("monitoring.coreos.com", "v1", kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), &t.ns, &ar);
    t.wait(&format!("{kind} {name}"), secs(60), async || {
        match api.get_opt(name).await {
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err("not created".into()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// Issue 11, point 10: over HTTPS the metrics are read only with a token the API server
/// authenticates and authorises for the path: no token or a forged one is 401, a service
/// account without the reader role is 403, the ServiceMonitor's account (deploy/monitoring's
/// metrics RBAC) gets them; `/healthz` needs nothing. The operator runs with deploy/rbac, so
/// this also shows that it may review tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_over_https_need_a_token_allowed_to_read_them() {
    let mut t = TestNs::new("metricsauth", 0).await;
    let metrics_rbac = cluster::deploy_docs("monitoring")
        .into_iter()
        .filter(|(file, _)| file.ends_with("metrics_rbac.yaml"))
        .collect();
    t.install_rbac(metrics_rbac).await;
    let stranger = "stranger";
    t.api::<ServiceAccount>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": stranger}}))
                .expect("service account"),
        )
        .await
        .expect("create a service account without the reader role");
    let certs = t.dir.join("serving-cert");
    tls::issue(&t.dir, "ca", &certs);
    let ca = t.dir.join("ca.crt");
    let op = Operator::start_serving(&t, "operator", &certs);
    let addr = op.metrics_addr();
    let get = async |path: &str, token: Option<&str>| {
        t.wait(&format!("HTTPS {path} answers"), secs(30), async || {
            tls::https_get(addr, &ca, path, token).await
        })
        .await
    };
    let status = |resp: &str| resp.lines().next().unwrap_or_default().to_owned();

    let resp = get("/healthz", None).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = get("/metrics-fio", None).await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{}", status(&resp));
    let resp = get("/metrics-fio", Some("not-a-token")).await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{}", status(&resp));
    let token = t.token(stranger, None).await;
    let resp = get("/metrics-fio", Some(&token)).await;
    assert!(resp.starts_with("HTTP/1.1 403"), "{}", status(&resp));
    assert!(!resp.contains("file_integrity_operator"), "{resp}");
    let token = t.token("file-integrity-operator-metrics", None).await;
    for path in ["/metrics-fio", "/metrics"] {
        let resp = get(path, Some(&token)).await;
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "{path}: {}",
            status(&resp)
        );
        assert!(resp.trim_end().ends_with("# EOF"), "{resp}");
    }

    // The serving certificate rotates while Prometheus scrapes (three clients, no pause, each
    // request reviewed by the API server): no scrape fails; afterwards only the new one is served.
    let staged = t.dir.join("staged");
    tls::issue(&t.dir, "ca2", &staged);
    let ca2 = t.dir.join("ca2.crt");
    let (old, new) =
        tls::scrape_through_rotation(addr, (&ca, &ca2), Some(&token), &staged, &certs).await;
    assert!(
        old > 0 && new > 0,
        "scrapes before/after the rotation: {old}/{new}"
    );
    assert!(tls::https_get(addr, &ca, "/metrics-fio", Some(&token))
        .await
        .is_err());
    op.metrics().await;
}

/// Issue 25: a failed reconcile is counted by the step that failed
/// (`reconcile_errors_total{controller, error}`), each failure provoked on the real API server
/// by an admission policy refusing one of the operator's writes in the test namespace (as an
/// administrator's policy, a quota or a webhook could). Each refusal is lifted in turn; then
/// the DaemonSet exists and the status is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_reconciles_are_counted_by_the_step_that_failed() {
    let t = TestNs::new("reconcileerr", 0).await;
    let fi_name = "example-fileintegrity";
    let refusals = [
        (
            "apply_config",
            json!({"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}),
            format!("object.metadata.name != '{fi_name}'"),
        ),
        (
            "apply_daemonset",
            json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["daemonsets"]}),
            "false".to_owned(),
        ),
        (
            "write_status",
            json!({"apiGroups": ["fileintegrity.openshift.io"], "apiVersions": ["v1alpha1"],
                   "resources": ["fileintegrities/status"]}),
            "false".to_owned(),
        ),
    ];
    let policies: Vec<Refusal> = refusals
        .iter()
        .map(|(label, rule, expression)| Refusal::new(&t, label, rule, expression))
        .collect();
    for p in &policies {
        p.create(&t).await;
    }
    let op = Operator::start(&t);
    t.create_fi(&t.file_integrity(fi_name)).await;
    for p in &policies {
        let line = errors_series(p.label);
        t.wait(&format!("{line} counted"), secs(60), async || {
            let text = op.metrics().await;
            match metric_value(&text, &line) {
                Some(n) if n >= 1.0 => Ok(()),
                _ => Err(text
                    .lines()
                    .filter(|l| l.contains("reconcile_errors"))
                    .collect::<Vec<_>>()
                    .join("\n")),
            }
        })
        .await;
        p.delete(&t).await;
    }
    // Every step goes through now: the DaemonSet is there and the status written.
    let ds = fio_api::names::daemonset_name(fi_name);
    t.wait("the DaemonSet and a status phase", secs(60), async || {
        let fi = t.get_fi(fi_name).await;
        let phase = fi.status.and_then(|s| s.phase);
        match t.api::<DaemonSet>().get_opt(&ds).await {
            Ok(Some(_)) if phase.is_some() => Ok(()),
            other => Err(format!("DaemonSet {ds}: {other:?}; phase {phase:?}")),
        }
    })
    .await;
    let text = op.metrics().await;
    for p in &policies {
        let line = errors_series(p.label);
        assert!(metric_value(&text, &line).is_some(), "{line} not in {text}");
    }
}

/// The FileIntegrity controller's failed-reconcile series for the step labelled `error`.
fn errors_series(error: &str) -> String {
    format!(
        "file_integrity_operator_reconcile_errors_total{{controller=\"fileintegrity\",error=\"{error}\"}}"
    )
}

/// The value of the sample `series` (name and labels as encoded) in `text`.
fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// A ValidatingAdmissionPolicy and its binding refusing writes the operator makes in the test's
/// namespace unless `expression` holds.
struct Refusal {
    label: &'static str,
    name: String,
    policy: serde_json::Value,
    binding: serde_json::Value,
}

impl Refusal {
    fn new(t: &TestNs, label: &'static str, rule: &serde_json::Value, expression: &str) -> Refusal {
        let name = format!("{}-{}", t.ns, label.replace('_', "-"));
        let mut rule = rule.clone();
        rule["operations"] = json!(["CREATE", "UPDATE"]);
        let policy = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [rule]},
                "validations": [{"expression": expression,
                                 "message": format!("refused by the test ({label})")}],
            },
        });
        let binding = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": t.ns}}},
            },
        });
        Refusal {
            label,
            name,
            policy,
            binding,
        }
    }

    async fn create(&self, t: &TestNs) {
        let pp = PostParams::default();
        let policy: ValidatingAdmissionPolicy =
            serde_json::from_value(self.policy.clone()).expect("policy");
        let binding: ValidatingAdmissionPolicyBinding =
            serde_json::from_value(self.binding.clone()).expect("binding");
        Api::<ValidatingAdmissionPolicy>::all(t.client.clone())
            .create(&pp, &policy)
            .await
            .unwrap_or_else(|e| panic!("policy {}: {e}", self.name));
        Api::<ValidatingAdmissionPolicyBinding>::all(t.client.clone())
            .create(&pp, &binding)
            .await
            .unwrap_or_else(|e| panic!("binding {}: {e}", self.name));
        // In force once the API server has loaded it: a dry-run write is refused. (The status
        // write is not probed, having no object yet; it comes after the two others are lifted,
        // seconds later.)
        t.wait(
            &format!("policy {} in force", self.name),
            secs(30),
            async || match self.probe(t).await {
                None => Ok(()),
                Some(Err(e)) if e.contains("refused by the test") => Ok(()),
                other => Err(format!("dry run: {other:?}")),
            },
        )
        .await;
    }

    /// A dry-run write of the kind the policy refuses, where one needs no other object.
    async fn probe(&self, t: &TestNs) -> Option<Result<(), String>> {
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let r = match self.label {
            "apply_config" => t
                .api::<ConfigMap>()
                .create(
                    &dry,
                    &serde_json::from_value(json!({"metadata": {"name": "example-fileintegrity"}}))
                        .expect("config map"),
                )
                .await
                .map(drop),
            "apply_daemonset" => t
                .api::<DaemonSet>()
                .create(
                    &dry,
                    &serde_json::from_value(json!({
                        "metadata": {"name": "probe"},
                        "spec": {"selector": {"matchLabels": {"a": "b"}},
                                 "template": {"metadata": {"labels": {"a": "b"}},
                                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
                    }))
                    .expect("daemon set"),
                )
                .await
                .map(drop),
            _ => return None,
        };
        Some(r.map_err(|e| e.to_string()))
    }

    async fn delete(&self, t: &TestNs) {
        let dp = DeleteParams::default();
        let _ = Api::<ValidatingAdmissionPolicyBinding>::all(t.client.clone())
            .delete(&self.name, &dp)
            .await;
        let _ = Api::<ValidatingAdmissionPolicy>::all(t.client.clone())
            .delete(&self.name, &dp)
            .await;
    }
}
