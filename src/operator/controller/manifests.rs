//! Objects of `deploy/` the operator applies itself at start, moved to its namespace: one source
//! for `kubectl apply -k` and for the operator.
//!
//! * The PrometheusRule (alert `NodeHasIntegrityFailure`) and the ServiceMonitor, when the cluster
//!   serves the Prometheus operator's API (upstream did the same).
//! * The daemons' admission policy, the one bounding the operator's own DaemonSets and the one
//!   naming who accepts changes, with their bindings (cluster-wide, the same for an operator in any namespace): an OLM bundle cannot
//!   carry them (OLM refuses their kinds), and an install through OLM must not lose the trust
//!   boundary. They are the guard's ([`super::admission`]), watched all along.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, Scope};
use kube::{Client, ResourceExt};

use super::context::MANAGER;
use fio_api::names;

const MANIFESTS: [(&str, &str); 5] = [
    (
        "deploy/monitoring/prometheus_rule.yaml",
        include_str!("../../../deploy/monitoring/prometheus_rule.yaml"),
    ),
    (
        "deploy/monitoring/service_monitor.yaml",
        include_str!("../../../deploy/monitoring/service_monitor.yaml"),
    ),
    (
        "deploy/rbac/daemon_admission_policy.yaml",
        include_str!("../../../deploy/rbac/daemon_admission_policy.yaml"),
    ),
    (
        "deploy/rbac/operator_admission_policy.yaml",
        include_str!("../../../deploy/rbac/operator_admission_policy.yaml"),
    ),
    (
        "deploy/rbac/accept_admission_policy.yaml",
        include_str!("../../../deploy/rbac/accept_admission_policy.yaml"),
    ),
];

/// The objects for `namespace`.
pub fn objects(namespace: &str) -> Result<Vec<DynamicObject>, String> {
    MANIFESTS
        .iter()
        .map(|(file, yaml)| {
            serde_saphyr::from_multiple::<DynamicObject>(
                &yaml.replace(names::DEFAULT_NAMESPACE, namespace),
            )
            .map_err(|e| format!("{file}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|files| files.into_iter().flatten().collect())
}

/// An admission policy or binding (the daemons' or the operator's own).
pub fn is_admission(o: &DynamicObject) -> bool {
    o.types
        .as_ref()
        .is_some_and(|t| t.kind.starts_with("ValidatingAdmissionPolicy"))
}

/// Apply each monitoring object whose API the cluster serves; the others are skipped with a
/// log line. Never fatal: metrics work without them.
pub async fn ensure(client: &Client, namespace: &str) {
    let objects = match objects(namespace) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("deploy/ manifests: {e}");
            return;
        }
    };
    for obj in objects.into_iter().filter(|o| !is_admission(o)) {
        let name = obj.name_any();
        let Some(gvk) = obj
            .types
            .as_ref()
            .and_then(|t| GroupVersionKind::try_from(t).ok())
        else {
            continue;
        };
        let (resource, caps) = match pinned_kind(client, &gvk).await {
            Ok(found) => found,
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
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One policy and binding per purpose, with the same names in every namespace (the
    /// ClusterRole names them), selecting no namespace (their match conditions name the
    /// accounts of the request's namespace).
    #[test]
    fn the_admission_objects_are_cluster_wide_and_named_alike_everywhere() {
        let names_in = |ns: &str| -> Vec<String> {
            objects(ns)
                .expect("deploy/ parses")
                .into_iter()
                .filter(is_admission)
                .map(|o| o.name_any())
                .collect()
        };
        let here = names_in(names::DEFAULT_NAMESPACE);
        assert_eq!(
            here,
            [
                "file-integrity-daemon-results",
                "file-integrity-daemon-results",
                "file-integrity-operator-daemonsets",
                "file-integrity-operator-daemonsets",
                "file-integrity-accept-requests",
                "file-integrity-accept-requests"
            ]
        );
        assert_eq!(names_in("fio-olm"), here);
        for o in objects("fio-olm")
            .expect("parses")
            .iter()
            .filter(|o| is_admission(o))
        {
            assert!(
                o.data["spec"].get("matchResources").is_none(),
                "{} selects namespaces",
                o.name_any()
            );
        }
    }
}
