//! `FileIntegrityNodeStatus`: the scan results of one node for one FileIntegrity.
//!
//! The object has no `spec` and no status subresource: `nodeName`, `results` and `lastResult`
//! sit beside `metadata` (upstream's shape). kube's `#[kube(no_spec)]` expresses exactly that:
//! the Rust root type keeps a `spec` field (so `Api`, `Resource` and `CustomResourceExt` work as
//! for any custom resource), but it is `#[serde(flatten)]`ed, on the wire and in the schema.
//! In Rust the fields are therefore reached as `status.spec.node_name`,
//! `status.spec.last_result` (see [`FileIntegrityNodeStatus::fields`]).
//!
//! Object name `<fi.name>-<node>`, namespace of the FileIntegrity, label
//! `file-integrity.openshift.io/owner=<fi.name>`, controller owner reference to the
//! FileIntegrity. Only the operator writes these objects.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fileintegrity::is_zero;

/// FileIntegrityNodeStatus holds the scan results of one node: the latest per condition.
// Several printer columns share `type_ = "integer"`, which clippy takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "fileintegrity.openshift.io",
    version = "v1alpha1",
    kind = "FileIntegrityNodeStatus",
    singular = "fileintegritynodestatus",
    plural = "fileintegritynodestatuses",
    shortname = "fins",
    shortname = "finodestatus",
    namespaced,
    no_spec,
    derive = "PartialEq",
    doc = "FileIntegrityNodeStatus holds the scan results of one node for one FileIntegrity. \
           Written by the operator only.",
    printcolumn(name = "Node", type_ = "string", json_path = ".nodeName"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".lastResult.condition",
        description = "Succeeded, Failed or Errored"
    ),
    printcolumn(
        name = "Added",
        type_ = "integer",
        json_path = ".lastResult.filesAdded",
        description = "Entries added since the database was initialised (last result)"
    ),
    printcolumn(
        name = "Changed",
        type_ = "integer",
        json_path = ".lastResult.filesChanged",
        description = "Entries changed since the database was initialised (last result)"
    ),
    printcolumn(
        name = "Removed",
        type_ = "integer",
        json_path = ".lastResult.filesRemoved",
        description = "Entries removed since the database was initialised (last result)"
    ),
    printcolumn(
        name = "Last Probe",
        type_ = "date",
        json_path = ".lastResult.lastProbeTime",
        description = "When the last result was reported",
        priority = 1
    ),
    printcolumn(
        name = "First Change",
        type_ = "string",
        json_path = ".lastResult.changes[0].path",
        description = "The first changed path (by path order) of a Failed last result",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FileIntegrityNodeStatusFields {
    /// The node these results are for.
    pub node_name: String,
    /// The latest result of each condition (at most one entry per condition).
    pub results: Vec<FileIntegrityScanResult>,
    /// The newest of `results`.
    pub last_result: FileIntegrityScanResult,
    /// The newest re-initialisation request (see the FileIntegrity's
    /// `file-integrity.openshift.io/reinit-requests` annotation) this node has completed. Not in
    /// upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinit_id: Option<i64>,
    /// The newest acceptance request (annotation `file-integrity.openshift.io/accept-requests`)
    /// this node has completed: its baseline moved for some paths only (ours, issue 28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_id: Option<i64>,
    /// Changes accepted into the node's baseline for their path only, newest first (at most
    /// [`MAX_ACCEPTED`]; ours, issue 28).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_changes: Vec<AcceptedChange>,
    /// The node's baseline database as recorded at its last legitimate (re-)initialisation: the
    /// anchor a rewritten `aide.db.gz` is detected against. Not in upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<NodeBaseline>,
    /// The `resourceVersion` of the node's result ConfigMap (`aide-<fi>-<node>`) these results
    /// last recorded: a result updated in place is processed once, also across operator
    /// restarts. Not in upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_version: Option<String>,
}

impl FileIntegrityNodeStatusFields {
    /// Add `result`: it replaces its condition's entry in `results`, and `last_result` is the
    /// newest of them (on equal times, `result`).
    pub fn record(&mut self, result: FileIntegrityScanResult) {
        self.results.retain(|r| r.condition != result.condition);
        self.results.push(result.clone());
        // `max_by_key` returns the last of equal maxima: the one just pushed.
        self.last_result = self
            .results
            .iter()
            .max_by_key(|r| r.last_probe_time.0)
            .cloned()
            .unwrap_or(result);
    }
}

/// The most accepted changes a node status keeps.
pub const MAX_ACCEPTED: usize = 20;

/// A change accepted into a node's baseline for its path only (ours, issue 28): what changed,
/// who wrote it, why it was accepted, and when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedChange {
    pub path: String,
    pub kind: ChangeKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// Old -> new of the changed attributes, as the node listed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<AttributeChange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<Writer>,
    /// Why: `rule <name>`, `node update <from> -> <to>` or `administrator <user>`.
    pub by: String,
    /// The acceptance request that moves it (see the FileIntegrity's
    /// `file-integrity.openshift.io/accept-requests`).
    pub request: i64,
    pub requested_at: Time,
    /// When the node reported its baseline moved for it (absent: not yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<Time>,
}

/// The identity of a node's baseline database, kept off the node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeBaseline {
    /// SHA-256 (hex) of the database file.
    pub sha256: String,
    /// Size of the database file in bytes.
    pub size: i64,
    /// Entries in the database, when the daemon reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<i64>,
    /// When it was recorded (the result that reported the initialisation).
    pub recorded_at: Time,
}

impl NodeBaseline {
    /// Why a database with digest `found` on `node` is not used: said by the daemon, which
    /// refuses to check against it, and by the operator, which discards a result made with it.
    pub fn mismatch(&self, node: &str, found: &str) -> String {
        format!(
            "database on node {node} does not match the baseline recorded at {} (sha256 {}, \
             found {found}); the result is not used. Re-initialise the node (annotation \
             file-integrity.openshift.io/re-init) if the change is legitimate",
            self.recorded_at.0, self.sha256
        )
    }
}

impl FileIntegrityNodeStatus {
    /// The top-level fields (`nodeName`, `results`, `lastResult`); an alias of `self.spec` with a
    /// name that does not suggest a spec.
    pub fn fields(&self) -> &FileIntegrityNodeStatusFields {
        &self.spec
    }
}

/// FileIntegrityScanResult defines one scan result of a node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileIntegrityScanResult {
    /// When the result was reported (creation time of the daemon's result ConfigMap).
    pub last_probe_time: Time,
    /// Succeeded (no differences), Failed (see the result ConfigMap) or Errored (see errorMessage).
    pub condition: FileIntegrityNodeCondition,
    /// Name of the ConfigMap holding the report of a Failed result.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result_config_map_name: String,
    /// Namespace of that ConfigMap.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result_config_map_namespace: String,
    /// What went wrong, for an Errored result.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    /// Number of entries added since the database was initialised.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_added: i64,
    /// Number of entries changed since the database was initialised.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_changed: i64,
    /// Number of entries removed since the database was initialised.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_removed: i64,
    /// SHA-256 of the daemon's view of the host's mounts when it scanned (ours; the daemon
    /// compares that view with the node's own before and after each scan).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mounts_sha256: String,
    /// Paths where a mount covers a file on the node (a file-level bind mount: the scan read
    /// the covering content), at most 10, then how many more (ours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covered_files: Vec<String>,
    /// A Failed result's changes, sorted by path: the first ones (at most 50, fewer when their
    /// text would make the object large); the full list is in the result ConfigMap (ours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FileChange>,
    /// How many changes of the result are not in `changes` (ours).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub changes_truncated: i64,
    /// SHA-256 of the result's full change list: equal digests, same changes (ours).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub changes_sha256: String,
    /// What the realtime watcher covered when the daemon reported: whether it watches, why
    /// not everything, and the gaps during which it saw nothing (ours; absent: the daemon
    /// does not watch, or predates realtime detection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime: Option<RealtimeCoverage>,
}

/// The realtime watcher's coverage of a node (ours).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeCoverage {
    pub state: CoverageState,
    /// Why the coverage is partial or off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The latest gaps, newest first (at most [`MAX_GAPS`]): times during which changes were
    /// not seen as they happened. Each is followed by a full scan, whose result closes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<RealtimeGap>,
}

/// The most gaps a result lists.
pub const MAX_GAPS: usize = 8;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CoverageState {
    /// Every filesystem of the scanned trees is watched; no gap is open.
    Full,
    /// Watching, but not everything (a filesystem not watched, too many directories) or a gap
    /// is open: scans cover the rest.
    Partial,
    /// Not watching (turned off, or the kernel cannot): scans only.
    Off,
}

/// A time during which the watcher saw nothing, and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealtimeGap {
    pub from: Time,
    /// When the full scan that followed reported (absent: still open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Time>,
    /// The daemon started (the time since the node's previous result), the kernel's event
    /// queue overflowed, an event could not be read, too many changes at once.
    pub cause: String,
}

impl RealtimeCoverage {
    /// The longest reason or cause the operator accepts.
    pub const MAX_TEXT: usize = 512;

    /// Whether it is within the bounds a daemon writes.
    pub fn bounded(&self) -> bool {
        self.reason.len() <= Self::MAX_TEXT
            && self.gaps.len() <= MAX_GAPS
            && self.gaps.iter().all(|g| g.cause.len() <= Self::MAX_TEXT)
    }
}

/// One changed entry of a node (ours).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    /// The path as on the node (`/etc/passwd`), escaped as AIDE's report escapes it (control
    /// characters and bytes that are not UTF-8 as `\ooo`); cut with `...` past 1024 bytes.
    pub path: String,
    pub kind: ChangeKind,
    /// For a changed entry: the attributes that changed (AIDE's JSON report names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
    /// For a changed entry: old and new value of the changed attributes that have a short
    /// one (type, permissions, owner, group, size, link target, mtime, inode, link count) and
    /// the first 16 hex digits of changed digests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<AttributeChange>,
    /// When the first scan that reported this change ran; kept across scans until the node's
    /// baseline is initialised again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// What found the change first: the realtime watcher, or a scan (ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_by: Option<FoundBy>,
    /// Who wrote it, as the kernel named the writers of the events that led to it (at most
    /// [`MAX_WRITERS`], the first ones); empty when a scan found it (ours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<Writer>,
}

/// The most writers a change names.
pub const MAX_WRITERS: usize = 4;

/// What found a change first.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// The realtime watcher, seconds after the write.
    Realtime,
    /// A scan (scheduled, or after a gap in realtime coverage).
    Scan,
}

/// A process that wrote a changed entry, as the daemon read it when the kernel reported the
/// write (ours).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Writer {
    pub state: WriterState,
    /// In the host's pid namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// `/proc/<pid>/comm`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comm: String,
    /// `/proc/<pid>/exe` when the daemon may read it, else the first word of its command line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exe: String,
    /// A host process: its systemd unit (`kubelet.service`), or its cgroup when it is in none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// A container's process: its pod and container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<WriterPod>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WriterState {
    /// Read while the process ran (its pid could not have been reused: checked with its pidfd).
    Attributed,
    /// The process had exited before it could be read: nothing is guessed.
    Exited,
    /// Not named: attribution is off, or the writer is not visible from the daemon.
    #[default]
    Unattributed,
}

/// The pod and container of a writer, from its cgroup and the node's pod log directories.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriterPod {
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
}

impl Writer {
    /// The longest text of a writer's field the operator accepts.
    pub const MAX_FIELD: usize = 256;

    /// Whether every field is within its bounds.
    pub fn bounded(&self) -> bool {
        let ok = |s: &str| s.len() <= Self::MAX_FIELD;
        ok(&self.comm)
            && ok(&self.exe)
            && ok(&self.unit)
            && self.pod.as_ref().is_none_or(|p| {
                ok(&p.uid)
                    && ok(&p.namespace)
                    && ok(&p.name)
                    && ok(&p.container)
                    && ok(&p.container_id)
            })
    }

    /// One line for Events and tables: `pod ns/name (container)`, `unit kubelet.service`,
    /// `pid 42 (sh)`, `exited`, `unattributed`.
    pub fn describe(&self) -> String {
        match self.state {
            WriterState::Exited => return "exited before attribution".into(),
            WriterState::Unattributed => return "unattributed".into(),
            WriterState::Attributed => {}
        }
        let who = match (&self.pod, self.unit.is_empty()) {
            (Some(p), _) if !p.name.is_empty() => {
                let c = if p.container.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.container)
                };
                format!("pod {}/{}{c}", p.namespace, p.name)
            }
            (Some(p), _) => format!("pod uid {}", p.uid),
            (None, false) => format!("unit {}", self.unit),
            (None, true) => String::new(),
        };
        let pid = self.pid.map(|p| format!("pid {p}")).unwrap_or_default();
        let comm = if self.comm.is_empty() {
            String::new()
        } else {
            format!(" {}", self.comm)
        };
        [who, format!("{pid}{comm}")]
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Old and new value of one attribute of a changed entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeChange {
    pub attribute: String,
    pub old: String,
    pub new: String,
}

/// What happened to an entry, as AIDE's report lists it.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

impl From<fio_core::changes::ChangeKind> for ChangeKind {
    fn from(k: fio_core::changes::ChangeKind) -> Self {
        use fio_core::changes::ChangeKind as K;
        match k {
            K::Added => ChangeKind::Added,
            K::Removed => ChangeKind::Removed,
            K::Changed => ChangeKind::Changed,
        }
    }
}

impl From<&fio_core::changes::Change> for FileChange {
    fn from(c: &fio_core::changes::Change) -> Self {
        FileChange {
            path: c.path.clone(),
            kind: c.kind.into(),
            attributes: c.attributes.iter().map(|a| (*a).to_owned()).collect(),
            details: c
                .details
                .iter()
                .map(|d| AttributeChange {
                    attribute: d.attribute.to_owned(),
                    old: d.old.clone(),
                    new: d.new.clone(),
                })
                .collect(),
            since: None,
            found_by: None,
            writers: Vec::new(),
        }
    }
}

impl FileIntegrityScanResult {
    /// A result with `condition` at `time` and nothing else set.
    pub fn new(last_probe_time: Time, condition: FileIntegrityNodeCondition) -> Self {
        Self {
            last_probe_time,
            condition,
            result_config_map_name: String::new(),
            result_config_map_namespace: String::new(),
            error_message: String::new(),
            files_added: 0,
            files_changed: 0,
            files_removed: 0,
            mounts_sha256: String::new(),
            covered_files: Vec::new(),
            changes: Vec::new(),
            changes_truncated: 0,
            changes_sha256: String::new(),
            realtime: None,
        }
    }
}

/// Condition of a scan result.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum FileIntegrityNodeCondition {
    /// The scan found no differences.
    Succeeded,
    /// The scan found differences; the report is in the result ConfigMap.
    Failed,
    /// The scan could not run.
    Errored,
}

impl FileIntegrityNodeCondition {
    /// The value as written in `condition`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Errored => "Errored",
        }
    }
}

impl fmt::Display for FileIntegrityNodeCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A node status as the upstream operator writes it (a Failed result after a Succeeded one).
    fn upstream_json() -> serde_json::Value {
        json!({
            "apiVersion": "fileintegrity.openshift.io/v1alpha1",
            "kind": "FileIntegrityNodeStatus",
            "metadata": {
                "name": "worker-fileintegrity-ip-10-0-139-137.ec2.internal",
                "namespace": "openshift-file-integrity",
                "labels": {"file-integrity.openshift.io/owner": "worker-fileintegrity"},
                "ownerReferences": [{
                    "apiVersion": "fileintegrity.openshift.io/v1alpha1",
                    "kind": "FileIntegrity",
                    "name": "worker-fileintegrity",
                    "uid": "5d2e0e0a-4b1c-4c38-9f0e-2f7c5e0b8c11",
                    "controller": true,
                    "blockOwnerDeletion": true
                }]
            },
            "nodeName": "ip-10-0-139-137.ec2.internal",
            "results": [
                {"condition": "Succeeded", "lastProbeTime": "2020-09-15T12:45:57Z"},
                {
                    "condition": "Failed",
                    "filesChanged": 1,
                    "lastProbeTime": "2020-09-15T12:54:14Z",
                    "resultConfigMapName": "aide-worker-fileintegrity-ip-10-0-139-137.ec2.internal-failed",
                    "resultConfigMapNamespace": "openshift-file-integrity"
                }
            ],
            "lastResult": {
                "condition": "Failed",
                "filesChanged": 1,
                "lastProbeTime": "2020-09-15T12:54:14Z",
                "resultConfigMapName": "aide-worker-fileintegrity-ip-10-0-139-137.ec2.internal-failed",
                "resultConfigMapNamespace": "openshift-file-integrity"
            }
        })
    }

    #[test]
    fn upstream_node_status_round_trips() {
        let v = upstream_json();
        let ns: FileIntegrityNodeStatus = serde_json::from_value(v.clone()).unwrap();
        let f = ns.fields();
        assert_eq!(f.node_name, "ip-10-0-139-137.ec2.internal");
        assert_eq!(f.results.len(), 2);
        assert_eq!(
            f.results[0].condition,
            FileIntegrityNodeCondition::Succeeded
        );
        assert_eq!(f.last_result.condition, FileIntegrityNodeCondition::Failed);
        assert_eq!(f.last_result.files_changed, 1);
        assert_eq!(f.last_result.files_added, 0);
        assert_eq!(
            f.last_result.result_config_map_name,
            "aide-worker-fileintegrity-ip-10-0-139-137.ec2.internal-failed"
        );
        assert_eq!(
            f.last_result.last_probe_time.0.to_string(),
            "2020-09-15T12:54:14Z"
        );
        assert_eq!(serde_json::to_value(&ns).unwrap(), v);
    }

    #[test]
    fn errored_result_uses_error_message() {
        let r: FileIntegrityScanResult = serde_json::from_value(json!({
            "condition": "Errored",
            "lastProbeTime": "2021-01-02T03:04:05Z",
            "errorMessage": "AIDE error: 17 Invalid configureline error"
        }))
        .unwrap();
        assert_eq!(r.condition, FileIntegrityNodeCondition::Errored);
        assert_eq!(
            r.error_message,
            "AIDE error: 17 Invalid configureline error"
        );
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(
            back["errorMessage"],
            "AIDE error: 17 Invalid configureline error"
        );
    }

    #[test]
    fn omitempty_fields_are_omitted() {
        let r = FileIntegrityScanResult::new(
            Time("2020-09-15T12:45:57Z".parse().unwrap()),
            FileIntegrityNodeCondition::Succeeded,
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"lastProbeTime": "2020-09-15T12:45:57Z", "condition": "Succeeded"})
        );
        // nodeName, results and lastResult have no omitempty upstream: always written.
        let ns = FileIntegrityNodeStatus::new(
            "fi-node",
            FileIntegrityNodeStatusFields {
                node_name: String::new(),
                results: Vec::new(),
                last_result: r,
                reinit_id: None,
                accept_id: None,
                accepted_changes: Vec::new(),
                baseline: None,
                result_version: None,
            },
        );
        let v = serde_json::to_value(&ns).unwrap();
        assert_eq!(v["nodeName"], "");
        assert_eq!(v["results"], json!([]));
        assert_eq!(v["lastResult"]["condition"], "Succeeded");
        assert!(v.get("spec").is_none(), "{v}");
        assert!(v.get("status").is_none(), "{v}");
    }

    #[test]
    fn required_fields_are_required() {
        let mut v = upstream_json();
        v.as_object_mut().unwrap().remove("lastResult");
        assert!(serde_json::from_value::<FileIntegrityNodeStatus>(v).is_err());
        let r = json!({"lastProbeTime": "2020-09-15T12:45:57Z"});
        assert!(serde_json::from_value::<FileIntegrityScanResult>(r).is_err());
        let r = json!({"condition": "Passed", "lastProbeTime": "2020-09-15T12:45:57Z"});
        assert!(serde_json::from_value::<FileIntegrityScanResult>(r).is_err());
    }

    #[test]
    fn conditions_are_upstream_strings() {
        for (c, s) in [
            (FileIntegrityNodeCondition::Succeeded, "Succeeded"),
            (FileIntegrityNodeCondition::Failed, "Failed"),
            (FileIntegrityNodeCondition::Errored, "Errored"),
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), json!(s));
            assert_eq!(c.to_string(), s);
        }
    }
}
