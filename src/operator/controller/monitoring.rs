//! The PrometheusRule (alert `NodeHasIntegrityFailure`) and the ServiceMonitor, created or updated
//! at start when the cluster serves the Prometheus operator's API (upstream did the same). The
//! objects are the files in `deploy/monitoring/`, moved to the operator's namespace: one source
//! for `kubectl apply -k deploy/monitoring` and for the operator.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::{Client, ResourceExt};

use super::MANAGER;
use fio_api::names;

const MANIFESTS: [(&str, &str); 2] = [
    (
        "deploy/monitoring/prometheus_rule.yaml",
        include_str!("../../../deploy/monitoring/prometheus_rule.yaml"),
    ),
    (
        "deploy/monitoring/service_monitor.yaml",
        include_str!("../../../deploy/monitoring/service_monitor.yaml"),
    ),
];

/// The objects for `namespace`.
pub fn objects(namespace: &str) -> Result<Vec<DynamicObject>, String> {
    MANIFESTS
        .iter()
        .map(|(file, yaml)| {
            serde_saphyr::from_str::<DynamicObject>(
                &yaml.replace(names::DEFAULT_NAMESPACE, namespace),
            )
            .map_err(|e| format!("{file}: {e}"))
        })
        .collect()
}

/// Apply each object whose API the cluster serves; the others are skipped with a log line.
/// Never fatal: metrics work without them.
pub async fn ensure(client: &Client, namespace: &str) {
    let objects = match objects(namespace) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("monitoring manifests: {e}");
            return;
        }
    };
    for obj in objects {
        let name = obj.name_any();
        let Some(gvk) = obj
            .types
            .as_ref()
            .and_then(|t| GroupVersionKind::try_from(t).ok())
        else {
            continue;
        };
        let resource = match pinned_kind(client, &gvk).await {
            Ok((resource, _)) => resource,
            Err(e) => {
                tracing::info!(
                    "{}/{} {} not served ({e}): not creating {name}",
                    gvk.group,
                    gvk.version,
                    gvk.kind
                );
                continue;
            }
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        match api
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
        {
            Ok(_) => tracing::info!("{} {namespace}/{name} applied", gvk.kind),
            Err(e) => tracing::warn!("applying {} {namespace}/{name}: {e}", gvk.kind),
        }
    }
}
