//! Objects of `deploy/` the operator applies itself at start, moved to its namespace: one source
//! for `kubectl apply -k` and for the operator.
//!
//! * The PrometheusRule (alert `NodeHasIntegrityFailure`) and the ServiceMonitor, when the cluster
//!   serves the Prometheus operator's API (upstream did the same).
//! * The daemons' admission policy and its binding: an OLM bundle cannot carry them (OLM refuses
//!   their kinds), and an install through OLM must not lose the trust boundary. They are the
//!   guard's ([`super::admission`]): applied when missing or altered, watched all along.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, Scope};
use kube::{Client, ResourceExt};

use super::MANAGER;
use fio_api::names;

const MANIFESTS: [(&str, &str); 3] = [
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
        .map(|files| {
            let mut objects: Vec<DynamicObject> = files.into_iter().flatten().collect();
            for o in &mut objects {
                // Cluster-scoped and selecting one namespace: one binding per operator namespace
                // (the policy itself is the same for all).
                let kind = o.types.as_ref().map(|t| t.kind.as_str());
                if kind == Some("ValidatingAdmissionPolicyBinding")
                    && namespace != names::DEFAULT_NAMESPACE
                {
                    o.metadata.name = Some(format!("{}-{namespace}", o.name_any()));
                }
            }
            objects
        })
}

/// The daemons' admission policy or its binding.
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

    fn binding(namespace: &str) -> DynamicObject {
        let objects = objects(namespace).expect("deploy/ parses");
        objects
            .into_iter()
            .find(|o| {
                o.types
                    .as_ref()
                    .is_some_and(|t| t.kind == "ValidatingAdmissionPolicyBinding")
            })
            .expect("the admission policy's binding is applied by the operator")
    }

    #[test]
    fn the_policy_binding_selects_the_operators_namespace() {
        let b = binding("fio-olm");
        assert_eq!(b.name_any(), "file-integrity-daemon-results-fio-olm");
        let selector = &b.data["spec"]["matchResources"]["namespaceSelector"]["matchLabels"];
        assert_eq!(selector["kubernetes.io/metadata.name"], "fio-olm");
        // `kubectl apply -k deploy/` and the operator in the default namespace: one object.
        assert_eq!(
            binding(names::DEFAULT_NAMESPACE).name_any(),
            "file-integrity-daemon-results"
        );
    }
}
