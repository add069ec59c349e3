//! FileIntegrity, node status, DaemonSet and ConfigMap helpers of a [`TestNs`], and the summary
//! of the namespace's objects printed when a test fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use fio_api::{names, FileIntegrity, FileIntegrityNodeStatus};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::Client;
use serde_json::{json, Value};

use super::TestNs;

impl TestNs {
    // ---- FileIntegrity helpers ----

    /// A FileIntegrity selecting this test's nodes, gracePeriod 10 (the minimum), debug off.
    pub fn file_integrity(&self, name: &str) -> FileIntegrity {
        let mut fi = FileIntegrity::new(name, Default::default());
        fi.metadata.namespace = Some(self.ns.clone());
        fi.spec.node_selector = self.node_selector();
        fi.spec.config.grace_period = 10;
        fi.spec.debug = false;
        fi
    }

    /// The MachineConfigPool `<ns>` selecting the test's nodes, targeting `rendered` (what the
    /// machine-config controller writes when it rolls a new config out), with the config it
    /// targeted before as the one rolled out to all its machines (`status.configuration`,
    /// until its nodes are updated; `rendered` for a new pool); the pool API
    /// (`tests/fixtures/machineconfigpool-crd.yaml`) installed first. Once installed, the
    /// operator re-initialises a node after an update only if its pool confirms it.
    pub async fn set_machine_config_pool(&self, rendered: &str) {
        super::install_fixture_crds("machineconfigpool-crd.yaml").await;
        let before = self
            .machine_config_pools()
            .get_opt(&self.ns)
            .await
            .unwrap_or_else(|e| panic!("reading MachineConfigPool {}: {e}", self.ns))
            .and_then(|p| {
                p.data["spec"]["configuration"]["name"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| rendered.to_owned());
        let pool = json!({
            "apiVersion": "machineconfiguration.openshift.io/v1",
            "kind": "MachineConfigPool",
            "metadata": {"name": self.ns},
            "spec": {
                "nodeSelector": {"matchLabels": {super::NODE_SELECTOR_LABEL: self.ns}},
                "configuration": {"name": rendered}
            }
        });
        self.machine_config_pools()
            .patch(
                &self.ns,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&pool),
            )
            .await
            .unwrap_or_else(|e| panic!("applying MachineConfigPool {}: {e}", self.ns));
        self.set_machine_config_pool_rolled_out(&before).await;
    }

    /// The pool's `status.configuration`: what the machine-config controller records once all
    /// the pool's machines run a config.
    pub async fn set_machine_config_pool_rolled_out(&self, rendered: &str) {
        let status = json!({
            "apiVersion": "machineconfiguration.openshift.io/v1",
            "kind": "MachineConfigPool",
            "metadata": {"name": self.ns},
            "status": {"configuration": {"name": rendered}}
        });
        self.machine_config_pools()
            .patch_status(
                &self.ns,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&status),
            )
            .await
            .unwrap_or_else(|e| panic!("MachineConfigPool {} status: {e}", self.ns));
    }

    fn machine_config_pools(&self) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(
            "machineconfiguration.openshift.io",
            "v1",
            "MachineConfigPool",
        );
        Api::all_with(
            self.client.clone(),
            &ApiResource::from_gvk_with_plural(&gvk, "machineconfigpools"),
        )
    }

    /// Deletes the pool of [`TestNs::set_machine_config_pool`] (best effort).
    pub async fn delete_machine_config_pool(&self) {
        let _ = self
            .machine_config_pools()
            .delete(&self.ns, &DeleteParams::default())
            .await;
    }

    pub async fn create_fi(&self, fi: &FileIntegrity) -> FileIntegrity {
        self.api::<FileIntegrity>()
            .create(&PostParams::default(), fi)
            .await
            .unwrap_or_else(|e| panic!("create FileIntegrity {:?}: {e}", fi.metadata.name))
    }

    pub async fn get_fi(&self, name: &str) -> FileIntegrity {
        self.api::<FileIntegrity>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get FileIntegrity {name}: {e}"))
    }

    /// JSON merge patch of a FileIntegrity (spec or metadata) as admin.
    pub async fn merge_patch_fi(&self, name: &str, patch: Value) -> FileIntegrity {
        self.api::<FileIntegrity>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch FileIntegrity {name} with {patch}: {e}"))
    }

    /// `kubectl annotate fileintegrities/<name> <key>=<value>`.
    pub async fn annotate_fi(&self, name: &str, key: &str, value: &str) {
        self.merge_patch_fi(name, json!({"metadata": {"annotations": {key: value}}}))
            .await;
    }

    /// The node statuses of `fi` by node name (label owner=<fi>).
    pub async fn node_statuses(
        &self,
        fi: &str,
    ) -> Result<BTreeMap<String, FileIntegrityNodeStatus>, String> {
        let lp = ListParams::default().labels(&format!("{}={fi}", names::OWNER_LABEL));
        let list = self
            .api::<FileIntegrityNodeStatus>()
            .list(&lp)
            .await
            .map_err(|e| format!("list node statuses: {e}"))?;
        Ok(list
            .items
            .into_iter()
            .map(|s| (s.spec.node_name.clone(), s))
            .collect())
    }

    /// The pods of a DaemonSet (label `app=<ds>`) that are Running, by node.
    pub async fn running_pods(&self, ds: &str) -> Result<BTreeMap<String, Pod>, String> {
        let pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("{}={ds}", names::APP_LABEL)))
            .await
            .map_err(|e| format!("list pods app={ds}: {e}"))?;
        Ok(pods
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| Some((p.spec.as_ref()?.node_name.clone()?, p)))
            .collect())
    }

    pub async fn get_configmap(&self, name: &str) -> Option<ConfigMap> {
        self.api::<ConfigMap>()
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get ConfigMap {name}: {e}"))
    }

    /// Summary of the namespace's objects (printed when a test fails).
    pub(super) async fn dump(client: Client, ns: &str) -> String {
        let mut out = String::new();
        let fis: Api<FileIntegrity> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = fis.list(&ListParams::default()).await {
            for fi in list {
                let _ = writeln!(
                    out,
                    "FileIntegrity {}: annotations {}, spec {}, status {}",
                    fi.metadata.name.as_deref().unwrap_or("?"),
                    json!(fi.metadata.annotations),
                    json!(fi.spec),
                    json!(fi.status)
                );
            }
        }
        let st: Api<FileIntegrityNodeStatus> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = st.list(&ListParams::default()).await {
            let map = list
                .items
                .into_iter()
                .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
                .collect();
            let _ = writeln!(out, "node statuses: {}", summarize_node_statuses(&map));
        }
        let ds: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = ds.list(&ListParams::default()).await {
            for d in list {
                let args = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref())
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.args.clone());
                let _ = writeln!(
                    out,
                    "DaemonSet {}: generation {:?}, args {args:?}, status {:?}",
                    d.metadata.name.as_deref().unwrap_or("?"),
                    d.metadata.generation,
                    d.status
                );
            }
        }
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        if let Ok(list) = cms.list(&ListParams::default()).await {
            for c in list.items {
                // ours only (not kube-root-ca.crt's description)
                let ann: BTreeMap<String, String> = c
                    .metadata
                    .annotations
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("file-integrity.openshift.io/"))
                    .collect();
                let _ = writeln!(
                    out,
                    "ConfigMap {}: labels {}, annotations {}, owners {}",
                    c.metadata.name.as_deref().unwrap_or("?"),
                    json!(c.metadata.labels),
                    json!(ann),
                    c.metadata.owner_references.map_or(0, |o| o.len())
                );
            }
        }
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, ns);
        if let Ok(list) = events.list(&ListParams::default()).await {
            for e in list.items.iter().rev().take(30).rev() {
                let _ = writeln!(
                    out,
                    "Event {} {}/{}: {} {}",
                    e.type_.as_deref().unwrap_or(""),
                    e.involved_object.kind.as_deref().unwrap_or(""),
                    e.involved_object.name.as_deref().unwrap_or(""),
                    e.reason.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                );
            }
        }
        out
    }
}

/// One line per node status: condition, counts, probe time, reinitId, result ConfigMap.
pub fn summarize_node_statuses(s: &BTreeMap<String, FileIntegrityNodeStatus>) -> String {
    if s.is_empty() {
        return "(no node statuses)".into();
    }
    let mut out = String::new();
    for (k, v) in s {
        let r = &v.spec.last_result;
        let _ = write!(
            out,
            "\n  {k}: {} +{} ~{} -{} at {} reinitId {:?} cm {:?} err {:?} (results: {:?})",
            r.condition,
            r.files_added,
            r.files_changed,
            r.files_removed,
            r.last_probe_time.0,
            v.spec.reinit_id,
            r.result_config_map_name,
            r.error_message,
            v.spec
                .results
                .iter()
                .map(|r| r.condition.as_str())
                .collect::<Vec<_>>()
        );
    }
    out
}
