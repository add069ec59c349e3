//! `FileIntegrity`: which nodes to scan, with which AIDE configuration, how often.
//!
//! Field names, JSON names, defaults and `omitempty` are upstream's
//! (`pkg/apis/fileintegrity/v1alpha1/fileintegrity_types.go`): a field that Go omits when empty is
//! skipped here when empty, and a field with a `+kubebuilder:default` has the same default both
//! in the generated schema (applied by the API server) and in serde (applied when a manifest is
//! read locally).

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Toleration;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::holdoff::NodePause;
use crate::names;
use crate::reinit::ReinitRequests;

/// FileIntegritySpec defines the desired state of FileIntegrity.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "fileintegrity.openshift.io",
    version = "v1alpha1",
    kind = "FileIntegrity",
    singular = "fileintegrity",
    plural = "fileintegrities",
    shortname = "fi",
    namespaced,
    status = "FileIntegrityStatus",
    derive = "PartialEq",
    doc = "FileIntegrity runs an AIDE-compatible file integrity scan on the selected nodes and \
           reports per-node results in FileIntegrityNodeStatus objects.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Initializing, Active, Pending or Error"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FileIntegritySpec {
    /// Nodes to scan: the scan DaemonSet's node selector (empty: all nodes the tolerations allow).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// The AIDE configuration and scan settings.
    pub config: FileIntegrityConfig,
    /// Verbose logging of the scan daemon.
    #[serde(default, skip_serializing_if = "is_false")]
    pub debug: bool,
    /// Tolerations of the scan pods (default: the master and infra NoSchedule taints).
    #[serde(default = "default_tolerations", skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// PriorityClass of the scan pods (a name that does not exist is ignored, with an event).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    /// Realtime detection of changes and naming of their writers (ours; on by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime: Option<RealtimeSpec>,
    /// Changes the platform makes on purpose: which writers may change which paths, and how
    /// (ours). Such a change is accepted into that node's baseline for those paths only, with
    /// a record of it, instead of failing the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_changes: Vec<crate::expected::ExpectedChange>,
    /// Monitor files the platform rotates, which upstream's default configuration excludes,
    /// under built-in expected-changes rules instead (ours; default false, upstream's
    /// configuration): `/etc/kubernetes/kubelet-ca.crt`,
    /// `/etc/machine-config-daemon/currentconfig` and
    /// `/etc/mco/internal-registry-pull-secret.json`, each accepted per path when the
    /// machine-config daemon rewrites it. Needs writers named (realtime attribution on);
    /// turning it on or off changes the default configuration (every node re-initialised).
    #[serde(default, skip_serializing_if = "is_false")]
    pub platform_rules: bool,
}

/// Realtime detection: the daemon watches the scanned trees through the kernel (fanotify) and
/// checks what changed within seconds; scheduled scans go on (ours).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeSpec {
    /// Watch for changes between scans (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Name the process, pod or host unit that made each change (default true). Needs the
    /// scan pods in the host's pid namespace (hostPID); off, they are not, and writers read
    /// "unattributed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<bool>,
}

impl FileIntegritySpec {
    /// The expected-changes rules in force: the spec's, then the platform's when asked for.
    pub fn rules(&self) -> Vec<crate::expected::ExpectedChange> {
        let mut all = self.expected_changes.clone();
        if self.platform_rules {
            all.extend(crate::expected::platform_rules());
        }
        all
    }

    /// Some expected-changes rule is in force.
    pub fn has_rules(&self) -> bool {
        self.platform_rules || !self.expected_changes.is_empty()
    }

    /// Realtime detection is on.
    pub fn realtime_enabled(&self) -> bool {
        self.realtime
            .as_ref()
            .and_then(|r| r.enabled)
            .unwrap_or(true)
    }

    /// Writers are named (realtime detection on, attribution not turned off).
    pub fn attribution(&self) -> bool {
        self.realtime_enabled()
            && self
                .realtime
                .as_ref()
                .and_then(|r| r.attribution)
                .unwrap_or(true)
    }
}

impl Default for FileIntegritySpec {
    /// The spec a manifest with `spec: {config: {}}` is read as.
    fn default() -> Self {
        Self {
            node_selector: BTreeMap::new(),
            config: FileIntegrityConfig::default(),
            debug: false,
            tolerations: default_tolerations(),
            priority_class_name: String::new(),
            realtime: None,
            expected_changes: Vec::new(),
            platform_rules: false,
        }
    }
}

/// FileIntegrityConfig names the AIDE configuration to use and sets the scan schedule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileIntegrityConfig {
    /// ConfigMap with a user AIDE configuration (used only with namespace; else the default one).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace of the user ConfigMap.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Data key of the AIDE configuration in the user ConfigMap (default aide.conf).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Time between individual scans, in seconds (at least 10 are used).
    #[serde(default = "default_grace_period", skip_serializing_if = "is_zero")]
    pub grace_period: i64,
    /// Number of backups of the database and log kept per node when re-initialising.
    #[serde(default = "default_max_backups", skip_serializing_if = "is_zero")]
    pub max_backups: i64,
    /// Seconds to wait after creation of the FileIntegrity before starting the scan DaemonSet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub initial_delay: i64,
}

impl Default for FileIntegrityConfig {
    /// The config a manifest with `config: {}` is read as.
    fn default() -> Self {
        Self {
            name: String::new(),
            namespace: String::new(),
            key: String::new(),
            grace_period: names::DEFAULT_GRACE_PERIOD,
            max_backups: names::DEFAULT_MAX_BACKUPS,
            initial_delay: 0,
        }
    }
}

impl FileIntegrityConfig {
    /// The user ConfigMap (namespace, name), if both are set (upstream ignores one without the
    /// other).
    pub fn user_config_map(&self) -> Option<(&str, &str)> {
        (!self.name.is_empty() && !self.namespace.is_empty())
            .then_some((self.namespace.as_str(), self.name.as_str()))
    }

    /// The data key of the AIDE configuration: `key`, or `aide.conf` when empty.
    pub fn data_key(&self) -> &str {
        if self.key.is_empty() {
            names::DEFAULT_CONFIG_DATA_KEY
        } else {
            &self.key
        }
    }

    /// The scan interval given to the daemon: `gracePeriod`, at least 10 seconds.
    pub fn scan_interval(&self) -> i64 {
        self.grace_period.max(names::MIN_GRACE_PERIOD)
    }
}

/// FileIntegrityStatus defines the observed state of FileIntegrity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileIntegrityStatus {
    /// Initializing, Active, Pending or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<FileIntegrityStatusPhase>,
    /// Why the phase is what it is, when that is not obvious: the configuration error with its
    /// line for Error, the nodes still re-initialising for Initializing. Not in upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The operator's copy of its re-init requests (the `reinit-requests` annotation): a client
    /// that replaces the object's metadata cannot wipe it, so no node that completed a re-init
    /// skips the next one. Not in upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinit_requests: Option<ReinitRequests>,
    /// The nodes paused for a MachineConfig update, by name: since when, from which config.
    /// Not in upstream.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_pauses: BTreeMap<String, NodePause>,
}

/// Phase: Initializing (databases being built, DaemonSet not ready), Active, Pending or Error.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum FileIntegrityStatusPhase {
    /// A database is being initialised, or the scan DaemonSet is not ready.
    Initializing,
    /// The scan DaemonSet is ready and no node reports an error.
    Active,
    /// The scan DaemonSet does not exist yet.
    Pending,
    /// At least one node's last result is `Errored`.
    Error,
}

impl FileIntegrityStatusPhase {
    /// The value as written in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "Initializing",
            Self::Active => "Active",
            Self::Pending => "Pending",
            Self::Error => "Error",
        }
    }
}

impl fmt::Display for FileIntegrityStatusPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default of `spec.tolerations`: master and infra `NoSchedule` taints, operator `Exists`.
pub fn default_tolerations() -> Vec<Toleration> {
    names::DEFAULT_TOLERATION_KEYS
        .iter()
        .map(|key| Toleration {
            key: Some((*key).to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some("NoSchedule".to_owned()),
            ..Toleration::default()
        })
        .collect()
}

fn default_grace_period() -> i64 {
    names::DEFAULT_GRACE_PERIOD
}

fn default_max_backups() -> i64 {
    names::DEFAULT_MAX_BACKUPS
}

// serde's skip_serializing_if passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

#[allow(clippy::trivially_copy_pass_by_ref)]
pub(super) fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_spec_gets_upstream_defaults() {
        let fi: FileIntegrity = serde_json::from_value(json!({
            "apiVersion": "fileintegrity.openshift.io/v1alpha1",
            "kind": "FileIntegrity",
            "metadata": {"name": "example-fileintegrity", "namespace": "openshift-file-integrity"},
            "spec": {"debug": false, "config": {}}
        }))
        .unwrap();
        assert_eq!(fi.spec, FileIntegritySpec::default());
        assert_eq!(fi.spec.config.grace_period, 900);
        assert_eq!(fi.spec.config.max_backups, 5);
        assert_eq!(fi.spec.config.initial_delay, 0);
        assert_eq!(fi.spec.config.data_key(), "aide.conf");
        assert_eq!(fi.spec.config.user_config_map(), None);
        assert_eq!(fi.spec.tolerations.len(), 2);
        assert_eq!(
            fi.spec.tolerations[0].key.as_deref(),
            Some("node-role.kubernetes.io/master")
        );
        assert_eq!(
            fi.spec.tolerations[1].key.as_deref(),
            Some("node-role.kubernetes.io/infra")
        );
        assert!(fi.status.is_none());
    }

    #[test]
    fn spec_config_is_required() {
        let err = serde_json::from_value::<FileIntegritySpec>(json!({"debug": true})).unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
    }

    #[test]
    fn explicit_values_round_trip() {
        let v = json!({
            "apiVersion": "fileintegrity.openshift.io/v1alpha1",
            "kind": "FileIntegrity",
            "metadata": {"name": "worker-fileintegrity", "namespace": "openshift-file-integrity"},
            "spec": {
                "nodeSelector": {"node-role.kubernetes.io/worker": ""},
                "tolerations": [{"key": "myNode", "operator": "Exists", "effect": "NoSchedule"}],
                "config": {
                    "name": "myconfig",
                    "namespace": "openshift-file-integrity",
                    "key": "config",
                    "gracePeriod": 20,
                    "maxBackups": 3,
                    "initialDelay": 60
                },
                "debug": true,
                "priorityClassName": "system-node-critical"
            },
            "status": {"phase": "Active"}
        });
        let fi: FileIntegrity = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            fi.spec.config.user_config_map(),
            Some(("openshift-file-integrity", "myconfig"))
        );
        assert_eq!(fi.spec.config.data_key(), "config");
        assert_eq!(
            fi.status.as_ref().unwrap().phase,
            Some(FileIntegrityStatusPhase::Active)
        );
        assert_eq!(serde_json::to_value(&fi).unwrap(), v);
    }

    #[test]
    fn omitempty_fields_are_omitted() {
        let spec = FileIntegritySpec {
            config: FileIntegrityConfig {
                grace_period: 0,
                max_backups: 0,
                ..Default::default()
            },
            tolerations: Vec::new(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&spec).unwrap(), json!({"config": {}}));
        let fi = FileIntegrity::new("x", FileIntegritySpec::default());
        let v = serde_json::to_value(&fi).unwrap();
        assert_eq!(
            v["spec"]["config"],
            json!({"gracePeriod": 900, "maxBackups": 5})
        );
        assert!(v.get("status").is_none(), "{v}");
        let status = FileIntegrityStatus::default();
        assert_eq!(serde_json::to_value(status).unwrap(), json!({}));
    }

    #[test]
    fn phases_are_upstream_strings() {
        for (phase, s) in [
            (FileIntegrityStatusPhase::Initializing, "Initializing"),
            (FileIntegrityStatusPhase::Active, "Active"),
            (FileIntegrityStatusPhase::Pending, "Pending"),
            (FileIntegrityStatusPhase::Error, "Error"),
        ] {
            assert_eq!(serde_json::to_value(phase).unwrap(), json!(s));
            assert_eq!(phase.to_string(), s);
        }
        assert!(serde_json::from_value::<FileIntegrityStatusPhase>(json!("Failed")).is_err());
    }

    #[test]
    fn scan_interval_is_clamped() {
        let mut c = FileIntegrityConfig::default();
        assert_eq!(c.scan_interval(), 900);
        c.grace_period = 3;
        assert_eq!(c.scan_interval(), 10);
    }
}
