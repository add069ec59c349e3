//! Monitoring (issue 5, section 2): the PrometheusRule and ServiceMonitor, and the metrics
//! endpoint the alert reads.

use crate::cluster::{self, secs, Operator, TestNs};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;

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
        monitor.data["spec"]["endpoints"][0]["tlsConfig"]["serverName"],
        format!("metrics.{}.svc", t.ns).as_str()
    );
    let managers: Vec<String> = rule
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
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
