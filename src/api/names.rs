//! Every well-known name of the upstream File Integrity Operator: API group, label and annotation
//! keys, object names and prefixes, service accounts, environment variables and event reasons.
//!
//! The strings are upstream's (`pkg/common/constants.go` and friends) so that existing manifests,
//! `oc annotate` habits, label selectors and dashboards keep working. Do not change a value here
//! without a migration plan: clusters carry these keys in etcd.

// ---- API ----------------------------------------------------------------------------------------

/// API group of both custom resources.
pub const GROUP: &str = "fileintegrity.openshift.io";
/// The only API version (served and stored).
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of both custom resources.
pub const API_VERSION: &str = "fileintegrity.openshift.io/v1alpha1";
/// Kind of the scan definition.
pub const FILE_INTEGRITY_KIND: &str = "FileIntegrity";
/// Plural resource name of [`FILE_INTEGRITY_KIND`].
pub const FILE_INTEGRITY_PLURAL: &str = "fileintegrities";
/// Kind of the per-node result object.
pub const NODE_STATUS_KIND: &str = "FileIntegrityNodeStatus";
/// Plural resource name of [`NODE_STATUS_KIND`].
pub const NODE_STATUS_PLURAL: &str = "fileintegritynodestatuses";

// ---- Label and annotation keys (upstream `pkg/common/constants.go`) -----------------------------

/// Label (value `""`) on the operator-managed AIDE config ConfigMap `<fi.name>`: marks it as an
/// AIDE config, so the ConfigMap controller does the re-init bookkeeping on it.
pub const AIDE_CONFIG_LABEL: &str = "file-integrity.openshift.io/aide-conf";
/// Annotation on a FileIntegrity: re-initialise the AIDE database. `""` = all nodes,
/// `n1,n2` = those nodes (`oc annotate fileintegrities/<fi> file-integrity.openshift.io/re-init=`).
pub const REINIT_ANNOTATION: &str = "file-integrity.openshift.io/re-init";
/// Annotation on a FileIntegrity: re-initialise every node whose last result is `Failed`
/// (converted by the operator into [`REINIT_ANNOTATION`], then removed).
pub const REINIT_ON_FAILED_ANNOTATION: &str = "file-integrity.openshift.io/re-init-on-failed";
/// Annotation on a FileIntegrity: scans are paused. `""` = all nodes, or a comma list of nodes.
/// Written by the node controller while the machine-config daemon updates a node.
pub const HOLDOFF_ANNOTATION: &str = "file-integrity.openshift.io/holdoff";
/// Annotation on FileIntegrity, owned by the operator (not in upstream): the re-init requests
/// per node, JSON `{"config":"<sha256>","seq":N,"nodes":{"<node>":<id>}}` (see NOTES.md).
pub const REINIT_REQUESTS_ANNOTATION: &str = "file-integrity.openshift.io/reinit-requests";
/// The operator's requests that nodes move their baseline for some paths only (ours, issue 28;
/// JSON [`crate::accept::AcceptRequests`]).
pub const ACCEPT_REQUESTS_ANNOTATION: &str = "file-integrity.openshift.io/accept-requests";
/// Annotation on a FileIntegrity (ours, issue 28): an administrator accepts current changes of
/// nodes into their baselines, per path, without a re-init. JSON `{"<node>": ["<path>", ...]}`
/// (paths as the node status lists them; `"*"`: every listed change of the node). The operator
/// turns it into requests ([`ACCEPT_REQUESTS_ANNOTATION`]) and removes it.
pub const ACCEPT_ANNOTATION: &str = "file-integrity.openshift.io/accept";
/// Beside [`ACCEPT_ANNOTATION`]: who asks, checked by the API server ([`ACCEPT_ADMISSION_POLICY`]
/// admits it only equal to the requesting user's name); the acceptances record it.
pub const ACCEPT_BY_ANNOTATION: &str = "file-integrity.openshift.io/accept-by";
/// Annotation on result ConfigMaps (ours, issue 28): the acceptance request the node completed
/// in this cycle and the paths it moved (JSON [`crate::accept::Accepted`]).
pub const ACCEPTED_ANNOTATION: &str = "file-integrity.openshift.io/accepted";
/// Annotation on result ConfigMaps (not in upstream): the newest re-init request id the node has
/// completed for this FileIntegrity.
pub const REINIT_ID_ANNOTATION: &str = "file-integrity.openshift.io/reinit-id";
/// Annotations on result ConfigMaps (not in upstream): SHA-256, size and entry count of the
/// database the scan used, and (present) when the daemon (re-)initialised it in this cycle.
pub const DB_SHA256_ANNOTATION: &str = "file-integrity.openshift.io/db-sha256";
pub const DB_SIZE_ANNOTATION: &str = "file-integrity.openshift.io/db-size";
pub const DB_ENTRIES_ANNOTATION: &str = "file-integrity.openshift.io/db-entries";
pub const DB_INITIALIZED_ANNOTATION: &str = "file-integrity.openshift.io/db-initialized";
/// Annotations on result ConfigMaps (not in upstream): how long the scan took (seconds, decimal)
/// and how many files it examined; the operator publishes them as metrics.
pub const SCAN_SECONDS_ANNOTATION: &str = "file-integrity.openshift.io/scan-seconds";
pub const FILES_SCANNED_ANNOTATION: &str = "file-integrity.openshift.io/files-scanned";
/// Annotation on an Errored result ConfigMap (not in upstream): AIDE's exit status (14-21), so
/// that the operator need not parse it out of the message. Absent when the daemon refused to scan.
pub const EXIT_CODE_ANNOTATION: &str = "file-integrity.openshift.io/exit-code";
/// Annotation on a result ConfigMap (not in upstream): how many newer results replaced older
/// ones on the node before they could be delivered (the previous one was not processed yet), so
/// that none is lost silently. Absent when none was.
pub const RESULTS_SUPERSEDED_ANNOTATION: &str = "file-integrity.openshift.io/results-superseded";
/// Annotation on a result ConfigMap (not in upstream): SHA-256 of the daemon's view of the host
/// (its mounts below the host root), checked against the node's own before and after the scan.
pub const MOUNTS_SHA256_ANNOTATION: &str = "file-integrity.openshift.io/mounts-sha256";
/// Annotation on a result ConfigMap (not in upstream): paths of the node where a mount covers a
/// file (a file-level bind mount; the scan reads the covering content), one per line.
pub const COVERED_FILES_ANNOTATION: &str = "file-integrity.openshift.io/covered-files";
/// Label (value `""`) on the daemon's result ConfigMap: process it as a scan result.
pub const LOG_LABEL: &str = "file-integrity.openshift.io/log";
/// Label (value `""`) on the persisted `<result-cm>-failed` ConfigMap ("a log we decided to
/// keep"); [`LOG_LABEL`] is removed from it so that it is not processed again.
pub const RESULT_LOG_LABEL: &str = "file-integrity.openshift.io/result-log";
/// Label whose value is the FileIntegrity name, on everything made for it: the AIDE config
/// ConfigMap, result ConfigMaps, the main DaemonSet and its pods, node statuses.
pub const OWNER_LABEL: &str = "file-integrity.openshift.io/owner";
/// Label whose value is the node name, on result ConfigMaps: which node produced the result.
pub const NODE_LABEL: &str = "file-integrity.openshift.io/node";
/// Label (value `""`) on the main DaemonSet's pod template: marks AIDE pods.
pub const POD_LABEL: &str = "file-integrity.openshift.io/pod";
/// Annotation on a result ConfigMap carrying an error text: node condition `Errored`.
pub const LOG_ERROR_ANNOTATION: &str = "file-integrity.openshift.io/log-errormsg";
/// Annotation (value `""`; upstream calls it a label, but it is an annotation) on a result
/// ConfigMap: its [`INTEGRITY_LOG_KEY`] data is gzip + base64.
pub const COMPRESSED_ANNOTATION: &str = "file-integrity.openshift.io/compressed";
/// Annotation on a result ConfigMap: number of added entries (decimal string).
pub const FILES_ADDED_ANNOTATION: &str = "file-integrity.openshift.io/files-added";
/// Annotation on a result ConfigMap: number of changed entries (decimal string).
pub const FILES_CHANGED_ANNOTATION: &str = "file-integrity.openshift.io/files-changed";
/// Annotation on a result ConfigMap: number of removed entries (decimal string).
pub const FILES_REMOVED_ANNOTATION: &str = "file-integrity.openshift.io/files-removed";
/// Data key of a result ConfigMap holding the scan report.
pub const INTEGRITY_LOG_KEY: &str = "integritylog";
/// Data key of a result ConfigMap (not in upstream): the full change list of a Failed result,
/// as AIDE 0.18's JSON report, packed like [`INTEGRITY_LOG_KEY`] (gzip + base64 with it).
pub const CHANGES_JSON_KEY: &str = "changes.json";
/// Annotation on a result ConfigMap (not in upstream): the first changes of a Failed result,
/// their total and the digest of the full list, as JSON (`fio_api::result::ChangeSummary`).
pub const CHANGES_ANNOTATION: &str = "file-integrity.openshift.io/changes";
/// Annotation on a result ConfigMap (not in upstream): the realtime watcher's coverage when the
/// daemon reported, as JSON (`fio_api::RealtimeCoverage`).
pub const REALTIME_ANNOTATION: &str = "file-integrity.openshift.io/realtime";
/// The cause of the realtime gap every daemon starts with.
pub const REALTIME_START_GAP: &str = "daemon started";

// ---- ConfigMaps, DaemonSets ------------------------------------------------------------------

/// Data key of the AIDE configuration in a ConfigMap, unless `spec.config.key` says otherwise.
pub const DEFAULT_CONFIG_DATA_KEY: &str = "aide.conf";
/// Prefix of the main scan DaemonSet: `aide-<fi.name>` (`oc get ds/aide-worker-fileintegrity`).
/// Result ConfigMaps are `aide-<fi.name>-<node>` and `aide-<fi.name>-<node>-failed`.
pub const DAEMONSET_PREFIX: &str = "aide";
/// Suffix of the persisted copy of a failed/errored result ConfigMap.
pub const FAILED_RESULT_CONFIGMAP_SUFFIX: &str = "-failed";
/// Pod selector label key of every DaemonSet the operator creates (value = DaemonSet name):
/// `oc get pods -l app=aide-worker-fileintegrity`.
pub const APP_LABEL: &str = "app";

// ---- What upstream's operator leaves behind (adopted or removed on the upgrade to us) ---------

/// Field manager of upstream's operator (its binary, `file-integrity-operator`, writing with
/// create/update): a scan DaemonSet with fields under it was made by upstream's controller.
pub const UPSTREAM_FIELD_MANAGER: &str = "file-integrity-operator";
/// Label on upstream's re-init DaemonSets `aide-ini-<fi>[-<node>]` (value: the FileIntegrity).
pub const UPSTREAM_REINIT_OWNER_LABEL: &str = "file-integrity.openshift.io/reinit-owner";
/// Upstream's scripts of those DaemonSets: ConfigMap name and its one data key.
pub const UPSTREAM_SCRIPT_CONFIGMAPS: [(&str, &str); 2] =
    [("aide-reinit", "aide.sh"), ("aide-pause", "pause.sh")];
/// Prefix of upstream's legacy per-FileIntegrity script ConfigMaps `aide-script-<fi>`.
pub const UPSTREAM_SCRIPT_CONFIGMAP_PREFIX: &str = "aide-script-";
/// Prefix of the scan DaemonSets of upstream's oldest versions (`aide-ds-<fi>`).
pub const UPSTREAM_LEGACY_DAEMONSET_PREFIX: &str = "aide-ds-";

// ---- Spec defaults ------------------------------------------------------------------------------

/// `spec.config.gracePeriod` default: seconds between scans.
pub const DEFAULT_GRACE_PERIOD: i64 = 900;
/// The operator never renders a shorter interval than this into the daemon's arguments.
pub const MIN_GRACE_PERIOD: i64 = 10;
/// `spec.config.maxBackups` default: re-init backups kept per node.
pub const DEFAULT_MAX_BACKUPS: i64 = 5;
/// Taint keys tolerated by default (`spec.tolerations` default, effect `NoSchedule`).
pub const DEFAULT_TOLERATION_KEYS: [&str; 2] = [
    "node-role.kubernetes.io/master",
    "node-role.kubernetes.io/infra",
];

// ---- Operator installation ----------------------------------------------------------------------

/// Namespace the operator is installed in (and, by default, the only one it watches).
pub const DEFAULT_NAMESPACE: &str = "openshift-file-integrity";
/// Service account of the operator (also used by re-init DaemonSet pods).
pub const OPERATOR_SERVICE_ACCOUNT: &str = "file-integrity-operator";
/// Service account of the per-node scan daemon pods.
pub const DAEMON_SERVICE_ACCOUNT: &str = "file-integrity-daemon";
/// Name of the operator Deployment (the operator reads its image from it).
pub const OPERATOR_DEPLOYMENT: &str = "file-integrity-operator";
/// Value of `OPERATOR_NAME` and of the `name` label on the operator's pods.
pub const OPERATOR_NAME: &str = "file-integrity-operator";
/// Image used when neither the Deployment nor `RELATED_IMAGE_OPERATOR` names one.
pub const DEFAULT_OPERATOR_IMAGE: &str =
    "quay.io/file-integrity-operator/file-integrity-operator:latest";

// ---- Environment variables ----------------------------------------------------------------------

/// Operator: namespace to watch (empty = the operator's own namespace).
pub const ENV_WATCH_NAMESPACE: &str = "WATCH_NAMESPACE";
/// Operator: its own pod name.
pub const ENV_POD_NAME: &str = "POD_NAME";
/// Operator: its name ([`OPERATOR_NAME`]).
pub const ENV_OPERATOR_NAME: &str = "OPERATOR_NAME";
/// Operator: image for the daemon and re-init pods when the Deployment's image is not usable.
pub const ENV_RELATED_IMAGE_OPERATOR: &str = "RELATED_IMAGE_OPERATOR";
/// Daemon: the node it runs on.
pub const ENV_NODE_NAME: &str = "NODE_NAME";

// ---- Events -------------------------------------------------------------------------------------

/// The daemons' admission policy and its binding (`deploy/rbac/daemon_admission_policy.yaml`):
/// the operator may get and patch them by this name, to put them back.
pub const DAEMON_ADMISSION_POLICY: &str = "file-integrity-daemon-results";
/// The policy (and binding) that admits an administrator's acceptance only under the name of
/// who asks (`deploy/rbac/accept_admission_policy.yaml`): guarded as the daemons' one.
pub const ACCEPT_ADMISSION_POLICY: &str = "file-integrity-accept-requests";
/// The policy (and binding) bounding the DaemonSets of the operator's own account
/// (`deploy/rbac/operator_admission_policy.yaml`): the operator may create them, never change
/// them.
pub const OPERATOR_ADMISSION_POLICY: &str = "file-integrity-operator-daemonsets";
/// The RBAC resource (of [`GROUP`], verb `use`) whose resource names are the images the operator's
/// account may run DaemonSets with (`deploy/rbac/operator_image_role.yaml`): no API serves it; the
/// policy above asks the authorizer.
pub const DAEMON_IMAGES: &str = "daemonimages";
/// The installer's Role granting the operator `use` on its one daemon image (by that name).
pub const OPERATOR_IMAGE_ROLE: &str = "file-integrity-operator-image";

/// Event reason for FileIntegrity phase changes (message = the phase).
pub const EVENT_REASON_FILE_INTEGRITY_STATUS: &str = "FileIntegrityStatus";
/// Event reason for node results (`no changes to node %s`, `node %s has changed! …`).
pub const EVENT_REASON_NODE_INTEGRITY_STATUS: &str = "NodeIntegrityStatus";
/// Event reason for an unusable `spec.priorityClassName`.
pub const EVENT_REASON_PRIORITY_CLASS: &str = "PriorityClass";
/// Event reason: a result ConfigMap that did not come from the node it names was discarded.
pub const EVENT_REASON_RESULT_REJECTED: &str = "ResultRejected";
/// Ours: files on a node are covered by mounts (Warning, when the list changes).
pub const EVENT_REASON_COVERED_FILES: &str = "FilesCoveredByMounts";
/// Ours (issue 28): a node moved accepted changes into its baseline, per path (Normal; names
/// the paths and who accepted them).
pub const EVENT_REASON_CHANGES_ACCEPTED: &str = "ChangesAccepted";
/// Ours: a node's MachineConfig update ended without its pool confirming it; scans resume
/// without a re-init (Warning).
pub const EVENT_REASON_UPDATE_UNCONFIRMED: &str = "NodeUpdateUnconfirmed";
/// Ours (issue 28): part of an administrator's acceptance could not be asked (Warning, naming
/// the node and path, or why the annotation was refused).
pub const EVENT_REASON_ACCEPT_IGNORED: &str = "AcceptIgnored";
/// Ours: scans on a node have been paused for a MachineConfig update for longer than the bound
/// (Warning, once per pause).
pub const EVENT_REASON_PAUSED_TOO_LONG: &str = "NodeUpdatePausedTooLong";

// ---- Object names -------------------------------------------------------------------------------

/// `name`, or `prefix` + SHA-1 hex of `name` when `name` is `limit` characters or longer
/// (upstream's DNSLengthName uses 64 for DaemonSets: `aide` + 40 hex digits).
fn length_limited(prefix: &str, name: String, limit: usize) -> String {
    if name.len() < limit {
        return name;
    }
    format!("{prefix}{}", fio_core::hash::sha1_hex(name.as_bytes()))
}

/// The scan DaemonSet of a FileIntegrity: `aide-<fi>`.
pub fn daemonset_name(fi: &str) -> String {
    length_limited(DAEMONSET_PREFIX, format!("{DAEMONSET_PREFIX}-{fi}"), 64)
}

/// The result ConfigMap of one node: `aide-<fi>-<node>`, hashed when it would not
/// leave room for the `-failed` suffix within the 253 characters of a name (upstream did not
/// limit it).
pub fn result_configmap_name(fi: &str, node: &str) -> String {
    length_limited(
        "aide-",
        format!("{DAEMONSET_PREFIX}-{fi}-{node}"),
        253 - FAILED_RESULT_CONFIGMAP_SUFFIX.len(),
    )
}

/// The kept history of one node's accepted changes (issue 28): `aide-<fi>-<node>-accepted`,
/// or `aide-accepted-` + SHA-1 hex when that would exceed the 253 characters of a name. Only
/// the operator writes it (a daemon may create its result ConfigMap only).
pub fn accepted_configmap_name(fi: &str, node: &str) -> String {
    length_limited(
        "aide-accepted-",
        format!("{DAEMONSET_PREFIX}-{fi}-{node}-accepted"),
        254,
    )
}

/// The key of the kept history's JSON array of records, newest first.
pub const ACCEPTED_HISTORY_KEY: &str = "accepted.json";

/// The node status of one node: `<fi>-<node>`, or `fins-` + SHA-1 hex when that would exceed
/// the 253 characters of a name (upstream did not limit it, and the object could not be made).
pub fn node_status_name(fi: &str, node: &str) -> String {
    length_limited("fins-", format!("{fi}-{node}"), 254)
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn node_status_names_stay_valid_object_names() {
        assert_eq!(
            node_status_name("worker-fileintegrity", "n1"),
            "worker-fileintegrity-n1"
        );
        let node = "n".repeat(253);
        let long = node_status_name("fi", &node);
        assert!(long.starts_with("fins-") && long.len() == 45, "{long}");
        assert_ne!(long, node_status_name("fj", &node));
        assert_eq!(node_status_name("fi", &"n".repeat(250)).len(), 253);
    }

    #[test]
    fn long_names_are_hashed_as_upstream() {
        assert_eq!(
            daemonset_name("worker-fileintegrity"),
            "aide-worker-fileintegrity"
        );
        let long = "x".repeat(59);
        assert_eq!(daemonset_name(&long[..58]).len(), 63);
        let hashed = daemonset_name(&long);
        assert!(hashed.starts_with("aide") && hashed.len() == 44, "{hashed}");
        assert_eq!(result_configmap_name("fi", "node-1"), "aide-fi-node-1");
        assert!(result_configmap_name("fi", &"n".repeat(250)).len() <= 253 - 7);
    }
}
