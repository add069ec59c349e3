//! The operator's Prometheus metrics: upstream's `file_integrity_operator_*` families with the
//! same names and label names (so existing dashboards and the `NodeHasIntegrityFailure` alert
//! keep working), every one of them actually incremented, and what an operator user expects
//! besides: reconcile counts, errors and durations, baseline mismatches, and per-node scan
//! durations and file counts as the daemons report them. [`serve`] publishes them.
//!
//! Label values are bounded: node names, phases, conditions and short error kinds, never free
//! text (upstream's `error` label carried whole messages).

mod access;
mod runtime;
mod serve;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use access::{Reviewer, Verdict};
pub use serve::{serve, Limits, ServeError, ServeOptions, Serving, CONTENT_TYPE};

/// Prefix of every family (upstream's namespace).
pub const PREFIX: &str = "file_integrity_operator";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReinitLabels {
    by: String,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    condition: String,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeErrorLabels {
    error: String,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileErrorLabels {
    controller: String,
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    fileintegrity: String,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AcceptedLabels {
    node: String,
    /// Who accepted: `rule`, `node update` or `administrator`.
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GapLabels {
    node: String,
    /// The kind of gap: `start`, `overflow`, `flood`, `read` or `other`.
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangesLabels {
    fileintegrity: String,
    node: String,
    /// The first changed paths (at most three, then how many more): for alert texts.
    first: String,
}

type DurationFamily = Family<ControllerLabels, Histogram, fn() -> Histogram>;

fn reconcile_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Why a re-init was requested (upstream's `by` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReinitBy {
    /// The `re-init` or `re-init-on-failed` annotation.
    Demand,
    /// A configuration change (all nodes).
    Config,
}

impl ReinitBy {
    fn as_str(self) -> &'static str {
        match self {
            ReinitBy::Demand => "demand",
            ReinitBy::Config => "config",
        }
    }
}

/// All metric families, shared by the controllers (`Arc<Metrics>` in their context).
pub struct Metrics {
    registry: Registry,
    phase: Family<PhaseLabels, Counter>,
    error: Family<ErrorLabels, Counter>,
    pause: Family<NodeLabels, Counter>,
    unpause: Family<NodeLabels, Counter>,
    reinit: Family<ReinitLabels, Counter>,
    node_status: Family<ConditionLabels, Counter>,
    node_failed: Family<NodeLabels, Gauge>,
    node_status_error: Family<NodeErrorLabels, Counter>,
    daemonset_update: Family<OperationLabels, Counter>,
    baseline_mismatch: Family<NodeLabels, Counter>,
    results_superseded: Family<NodeLabels, Counter>,
    events_dropped: Counter,
    /// The runtime's figures, unprefixed (see [`runtime`]).
    runtime: runtime::Runtime,
    reconcile: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ReconcileErrorLabels, Counter>,
    reconcile_duration: DurationFamily,
    scan_duration: Family<ScanLabels, Gauge<f64, AtomicU64>>,
    scan_files: Family<ScanLabels, Gauge>,
    last_result: Family<ScanLabels, Gauge<f64, AtomicU64>>,
    silent: Family<ScanLabels, Gauge>,
    paused_since: Family<ScanLabels, Gauge<f64, AtomicU64>>,
    /// The nodes with a `paused_since` sample, per FileIntegrity.
    paused: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Failed or not, per (FileIntegrity, node): `node_failed{node}` is 1 while any
    /// FileIntegrity has an unresolved failure on the node.
    failed: Mutex<BTreeMap<(String, String), bool>>,
    node_changes: Family<ChangesLabels, Gauge>,
    realtime_gaps: Family<GapLabels, Counter>,
    accepted_changes: Family<AcceptedLabels, Counter>,
    realtime_covered: Family<ScanLabels, Gauge>,
    /// The `first` label of each (FileIntegrity, node)'s `node_changes` sample, so that a new
    /// one replaces it (one sample per node status).
    first_changes: Mutex<BTreeMap<(String, String), String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Metrics {
            phase: Family::default(),
            error: Family::default(),
            pause: Family::default(),
            unpause: Family::default(),
            reinit: Family::default(),
            node_status: Family::default(),
            node_failed: Family::default(),
            node_status_error: Family::default(),
            daemonset_update: Family::default(),
            baseline_mismatch: Family::default(),
            results_superseded: Family::default(),
            events_dropped: Counter::default(),
            runtime: runtime::Runtime::new(),
            reconcile: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            scan_duration: Family::default(),
            scan_files: Family::default(),
            last_result: Family::default(),
            silent: Family::default(),
            paused_since: Family::default(),
            paused: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(BTreeMap::new()),
            node_changes: Family::default(),
            realtime_gaps: Family::default(),
            accepted_changes: Family::default(),
            realtime_covered: Family::default(),
            first_changes: Mutex::new(BTreeMap::new()),
            registry: Registry::default(),
        };
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "phase",
            "The number of FileIntegrity phase transitions, per phase",
            m.phase.clone(),
        );
        registry.register(
            "error",
            "The number of FileIntegrity phase errors, per error kind",
            m.error.clone(),
        );
        registry.register(
            "pause",
            "The number of times scanning was paused on a node for a MachineConfig update",
            m.pause.clone(),
        );
        registry.register(
            "unpause",
            "The number of times scanning resumed on a node after a MachineConfig update",
            m.unpause.clone(),
        );
        registry.register(
            "reinit",
            "The number of database re-initialisations requested, by trigger (demand, config, node) and node",
            m.reinit.clone(),
        );
        registry.register(
            "node_status",
            "The number of node status condition transitions, per condition and node",
            m.node_status.clone(),
        );
        registry.register(
            "node_failed",
            "1 while a node has an unresolved integrity failure, 0 otherwise",
            m.node_failed.clone(),
        );
        registry.register(
            "node_changes",
            "The changes of a node's Failed last result, with its first changed paths in the label first",
            m.node_changes.clone(),
        );
        registry.register(
            "node_realtime_gaps",
            "The number of gaps in a node's realtime detection (each followed by a full scan), per node and cause",
            m.realtime_gaps.clone(),
        );
        registry.register(
            "node_accepted_changes",
            "The number of changes a node moved into its baseline per path (expected changes, node updates, administrators), per node and who accepted",
            m.accepted_changes.clone(),
        );
        registry.register(
            "node_realtime_covered",
            "1 while a node's realtime detection watches everything with no gap open, 0 while it is partial or off; absent when turned off by the spec",
            m.realtime_covered.clone(),
        );
        registry.register(
            "node_status_error",
            "The number of Errored scan results, per error kind and node",
            m.node_status_error.clone(),
        );
        registry.register(
            "daemonset_update",
            "The number of writes to scan DaemonSets, per operation (update, delete)",
            m.daemonset_update.clone(),
        );
        registry.register(
            "baseline_mismatch",
            "The number of results whose database did not match the baseline anchored for the node",
            m.baseline_mismatch.clone(),
        );
        registry.register(
            "reconcile",
            "The number of reconciliations, per controller",
            m.reconcile.clone(),
        );
        registry.register(
            "reconcile_errors",
            "The number of reconciliations that failed, per controller and failed step",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciliations took, per controller",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "scan_duration_seconds",
            "How long the node's last scan took, as the daemon reported it",
            m.scan_duration.clone(),
        );
        registry.register(
            "scan_files",
            "The number of files the node's last scan examined, as the daemon reported it",
            m.scan_files.clone(),
        );
        registry.register(
            "node_last_result_timestamp_seconds",
            "When the node's last result was recorded (Unix time), per FileIntegrity and node",
            m.last_result.clone(),
        );
        registry.register(
            "node_paused_since_timestamp_seconds",
            "When scans on the node were paused for a MachineConfig update (Unix time), while they are",
            m.paused_since.clone(),
        );
        registry.register(
            "results_superseded",
            "Results a node replaced by newer ones before the operator had processed the previous one, per node",
            m.results_superseded.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not published because their bucket was empty (client-go's spam filter: 25 at once, then one per 5 minutes; per node for Warnings)",
            m.events_dropped.clone(),
        );
        registry.register(
            "node_silent",
            "1 while the operator has had no result from the node's daemon for more than two and a half scan intervals",
            m.silent.clone(),
        );
        Metrics { registry, ..m }
    }

    /// What a node status says about the node's liveness: when its last result was recorded,
    /// and whether that result is the operator's silence mark. Called for every node status
    /// the operator sees, so both survive a restart.
    pub fn set_liveness(&self, fi: &str, node: &str, last_result_at: f64, silent: bool) {
        let labels = ScanLabels {
            fileintegrity: fi.into(),
            node: node.into(),
        };
        self.last_result.get_or_create(&labels).set(last_result_at);
        self.silent.get_or_create(&labels).set(i64::from(silent));
    }

    /// The nodes of `fi` paused for a MachineConfig update, from the FileIntegrity's status
    /// (so the gauges survive a restart); nodes no longer paused lose their sample.
    pub fn set_pauses(&self, fi: &str, pauses: &BTreeMap<String, fio_api::NodePause>) {
        let mut known = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        let before = known.remove(fi).unwrap_or_default();
        let labels = |node: &str| ScanLabels {
            fileintegrity: fi.into(),
            node: node.into(),
        };
        for node in before.iter().filter(|n| !pauses.contains_key(*n)) {
            self.paused_since.remove(&labels(node));
        }
        for (node, p) in pauses {
            let at = p.since.0.as_millisecond() as f64 / 1000.0;
            self.paused_since.get_or_create(&labels(node)).set(at);
        }
        if !pauses.is_empty() {
            known.insert(fi.to_owned(), pauses.keys().cloned().collect());
        }
    }

    /// The exposition text (OpenMetrics), as served: ours, then the runtime's.
    pub fn encode(&self) -> String {
        runtime::encode_all(&[&self.registry, &self.runtime.registry])
    }

    /// Whether this process holds the operator's lease.
    pub fn leader(&self, lease: &str, leading: bool) {
        self.runtime.leader(lease, leading);
    }

    /// A reconcile of `controller` began (ended in [`Metrics::reconciled`]).
    pub fn reconcile_started(&self, controller: &str) {
        self.runtime.started(controller);
    }

    pub fn phase(&self, phase: &str) {
        self.phase
            .get_or_create(&PhaseLabels {
                phase: phase.into(),
            })
            .inc();
    }

    /// A FileIntegrity entered phase Error; `kind` is short and stable (`InvalidConfig`,
    /// `NodeErrored`, ...).
    pub fn error(&self, kind: &str) {
        self.error
            .get_or_create(&ErrorLabels { error: kind.into() })
            .inc();
    }

    pub fn pause(&self, node: &str) {
        self.pause.get_or_create(&node_labels(node)).inc();
    }

    pub fn unpause(&self, node: &str) {
        self.unpause.get_or_create(&node_labels(node)).inc();
    }

    /// A re-init request; `node` is "" for all nodes (upstream's convention for demand/config).
    pub fn reinit(&self, by: ReinitBy, node: &str) {
        self.reinit
            .get_or_create(&ReinitLabels {
                by: by.as_str().into(),
                node: node.into(),
            })
            .inc();
    }

    /// A node status changed condition (or appeared).
    pub fn node_status(&self, condition: &str, node: &str) {
        self.node_status
            .get_or_create(&ConditionLabels {
                condition: condition.into(),
                node: node.into(),
            })
            .inc();
    }

    /// Record whether `fi`'s last result on `node` is Failed; called for every node status the
    /// operator sees, so the gauge is rebuilt after a restart (upstream lost it, OCPBUGS-42807).
    pub fn set_failed(&self, fi: &str, node: &str, failed: bool) {
        let mut map = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((fi.to_owned(), node.to_owned()), failed);
        self.update_node_failed(&map, node);
    }

    /// The changes of `fi`'s last result on `node`: `Some((first paths, total))` while it is
    /// Failed with changes listed, else `None` (the sample goes).
    pub fn set_changes(&self, fi: &str, node: &str, changes: Option<(String, i64)>) {
        let mut map = self.first_changes.lock().unwrap_or_else(|p| p.into_inner());
        let key = (fi.to_owned(), node.to_owned());
        let labels = |first: String| ChangesLabels {
            fileintegrity: fi.into(),
            node: node.into(),
            first,
        };
        if let Some(old) = map.remove(&key) {
            self.node_changes.remove(&labels(old));
        }
        if let Some((first, total)) = changes {
            self.node_changes
                .get_or_create(&labels(first.clone()))
                .set(total);
            map.insert(key, first);
        }
    }

    /// `fi` no longer scans `node` (node or FileIntegrity deleted).
    pub fn forget(&self, fi: &str, node: &str) {
        self.set_changes(fi, node, None);
        let mut map = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(fi.to_owned(), node.to_owned()));
        self.update_node_failed(&map, node);
        let scan = ScanLabels {
            fileintegrity: fi.into(),
            node: node.into(),
        };
        self.scan_duration.remove(&scan);
        self.scan_files.remove(&scan);
        self.last_result.remove(&scan);
        self.silent.remove(&scan);
        self.realtime_covered.remove(&scan);
    }

    fn update_node_failed(&self, map: &BTreeMap<(String, String), bool>, node: &str) {
        let mut seen = false;
        let mut any = false;
        for ((_, n), failed) in map {
            if n == node {
                seen = true;
                any |= *failed;
            }
        }
        let labels = node_labels(node);
        if seen {
            self.node_failed.get_or_create(&labels).set(i64::from(any));
        } else {
            self.node_failed.remove(&labels);
        }
    }

    /// An Errored result; `kind` as for [`Metrics::error`].
    pub fn node_status_error(&self, kind: &str, node: &str) {
        self.node_status_error
            .get_or_create(&NodeErrorLabels {
                error: kind.into(),
                node: node.into(),
            })
            .inc();
    }

    /// `operation` is `update` or `delete`.
    pub fn daemonset_update(&self, operation: &str) {
        self.daemonset_update
            .get_or_create(&OperationLabels {
                operation: operation.into(),
            })
            .inc();
    }

    pub fn baseline_mismatch(&self, node: &str) {
        self.baseline_mismatch
            .get_or_create(&node_labels(node))
            .inc();
    }

    pub fn results_superseded(&self, node: &str, n: u64) {
        self.results_superseded
            .get_or_create(&node_labels(node))
            .inc_by(n);
    }

    /// A realtime gap a node reported for the first time.
    pub fn realtime_gap(&self, node: &str, cause: &str) {
        let kind = if cause == fio_api::names::REALTIME_START_GAP {
            "start"
        } else if cause.contains("overflow") {
            "overflow"
        } else if cause.contains("before they could be checked") {
            "flood"
        } else if cause.contains("fanotify") {
            "read"
        } else {
            "other"
        };
        self.realtime_gaps
            .get_or_create(&GapLabels {
                node: node.into(),
                cause: kind.into(),
            })
            .inc();
    }

    /// Changes `node` moved into its baseline, accepted by `by` (a record's `by`: `rule <name>`,
    /// `node update <from> -> <to>` or `administrator <user>`; the label keeps the kind only).
    pub fn accepted_changes(&self, node: &str, by: &str, n: u64) {
        let kind = ["rule", "node update", "administrator"]
            .into_iter()
            .find(|k| by.starts_with(k))
            .unwrap_or("other");
        self.accepted_changes
            .get_or_create(&AcceptedLabels {
                node: node.into(),
                by: kind.into(),
            })
            .inc_by(n);
    }

    /// Whether `fi`'s daemon on `node` watches everything (`None`: it does not report
    /// realtime coverage).
    pub fn set_realtime_covered(&self, fi: &str, node: &str, covered: Option<bool>) {
        let labels = ScanLabels {
            fileintegrity: fi.into(),
            node: node.into(),
        };
        match covered {
            Some(c) => {
                self.realtime_covered
                    .get_or_create(&labels)
                    .set(i64::from(c));
            }
            None => {
                self.realtime_covered.remove(&labels);
            }
        }
    }

    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    /// A reconcile of `controller` finished, failed at the step `error` names if any.
    pub fn reconciled(&self, controller: &str, took: Duration, error: Option<&str>) {
        let labels = ControllerLabels {
            controller: controller.into(),
        };
        self.reconcile.get_or_create(&labels).inc();
        if let Some(error) = error {
            self.reconcile_errors
                .get_or_create(&ReconcileErrorLabels {
                    controller: controller.into(),
                    error: error.into(),
                })
                .inc();
        }
        self.runtime.finished(controller, error.is_none());
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// What a daemon reported about its last scan.
    pub fn scan(&self, fi: &str, node: &str, seconds: Option<f64>, files: Option<i64>) {
        let labels = ScanLabels {
            fileintegrity: fi.into(),
            node: node.into(),
        };
        if let Some(s) = seconds {
            self.scan_duration.get_or_create(&labels).set(s);
        }
        if let Some(n) = files {
            self.scan_files.get_or_create(&labels).set(n);
        }
    }
}

fn node_labels(node: &str) -> NodeLabels {
    NodeLabels { node: node.into() }
}

/// One sample of an exposition text: the value of `name` with exactly `labels`, if present.
/// For tests and tools reading the endpoint.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if n != name {
            return None;
        }
        let mut found: Vec<(&str, &str)> = rest
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        let mut want = labels.to_vec();
        found.sort_unstable();
        want.sort_unstable();
        (found == want).then(|| value.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names_and_the_failed_gauge() {
        let m = Metrics::new();
        m.phase("Active");
        m.phase("Active");
        m.reinit(ReinitBy::Demand, "");
        m.set_failed("fi-a", "node-1", true);
        m.set_failed("fi-b", "node-1", false);
        m.set_failed("fi-b", "node-2", false);
        let text = m.encode();
        let s = |n, l: &[(&str, &str)]| sample(&text, n, l);
        assert_eq!(
            s(
                "file_integrity_operator_phase_total",
                &[("phase", "Active")]
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            s(
                "file_integrity_operator_reinit_total",
                &[("by", "demand"), ("node", "")]
            ),
            Some(1.0)
        );
        assert_eq!(
            s("file_integrity_operator_node_failed", &[("node", "node-1")]),
            Some(1.0)
        );
        assert_eq!(
            s("file_integrity_operator_node_failed", &[("node", "node-2")]),
            Some(0.0)
        );
        // One FileIntegrity's failure resolved; the other's is not.
        m.set_failed("fi-b", "node-1", false);
        m.set_failed("fi-a", "node-1", false);
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                "file_integrity_operator_node_failed",
                &[("node", "node-1")]
            ),
            Some(0.0)
        );
        m.forget("fi-a", "node-1");
        m.forget("fi-b", "node-1");
        let text = m.encode();
        assert_eq!(
            sample(
                &text,
                "file_integrity_operator_node_failed",
                &[("node", "node-1")]
            ),
            None,
            "a node nobody scans has no series"
        );
    }

    #[test]
    fn accepted_changes_are_counted_by_the_kind_of_acceptance() {
        let m = Metrics::new();
        m.accepted_changes("node-1", "rule kubelet-ca", 2);
        m.accepted_changes("node-1", "rule other", 1);
        m.accepted_changes("node-1", "administrator alice", 1);
        let text = m.encode();
        let name = "file_integrity_operator_node_accepted_changes_total";
        let s = |by| sample(&text, name, &[("by", by), ("node", "node-1")]);
        assert_eq!(s("rule"), Some(3.0), "{text}");
        assert_eq!(s("administrator"), Some(1.0));
        assert_eq!(s("node update"), None);
    }
}
