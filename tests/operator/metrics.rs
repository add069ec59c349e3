//! Monitoring (issue 5, section 2): the PrometheusRule and ServiceMonitor, and the metrics
//! endpoint the alert reads; who may read it (issue 11, point 10); its serving certificate
//! rotated under load (issue 13).

use crate::cluster::{self, secs, tls, Operator, TestNs};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
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
