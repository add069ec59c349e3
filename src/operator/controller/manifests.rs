//! Objects of `deploy/` the operator applies itself at start, moved to its namespace: one source
//! for `kubectl apply -k` and for the operator.
//!
//! * The PrometheusRule (alert `NodeHasIntegrityFailure`) and the ServiceMonitor, when the cluster
//!   serves the Prometheus operator's API (upstream did the same).
//! * The daemons' admission policy and its binding: an OLM bundle cannot carry them (OLM refuses
//!   their kinds), and an install through OLM must not lose the trust boundary.

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

/// Apply each object whose API the cluster serves; the others are skipped with a log line.
/// Never fatal: metrics work without the monitoring objects, and the operator checks each
/// result's node itself when the admission policy is missing.
pub async fn ensure(client: &Client, namespace: &str) {
    let objects = match objects(namespace) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("deploy/ manifests: {e}");
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
        if !overwrites(&gvk.kind) {
            match api.get_opt(&name).await {
                Ok(Some(found)) if !managed_by_us(&found) => {
                    tracing::info!("{} {name} exists (installed with deploy/): kept", gvk.kind);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("reading {} {name}: {e}", gvk.kind);
                    continue;
                }
            }
        }
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

/// The monitoring objects are overwritten, as upstream did. The admission policy and its binding
/// are applied only when missing or already the operator's: installed by `kubectl apply
/// --server-side -k deploy/`, they stay that command's (an apply of the operator's would take
/// `spec.matchConstraints`, an atomic field, and the next `kubectl apply` would conflict).
fn overwrites(kind: &str) -> bool {
    !kind.starts_with("ValidatingAdmissionPolicy")
}

fn managed_by_us(obj: &DynamicObject) -> bool {
    obj.metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|f| f.manager.as_deref() == Some(MANAGER))
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
