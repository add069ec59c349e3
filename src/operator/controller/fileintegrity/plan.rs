//! What reconciling a FileIntegrity changes, decided from what was read: a pure function
//! ([`plan`]) of the FileIntegrity, its deployed configuration, the nodes, the node statuses and
//! the DaemonSet, tested by feeding it objects. [`super::reconcile`] reads and applies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::super::admission::Admission;
use super::super::{adoption, daemonset};
use super::machine_config::Pool;
use super::updates::{self, NodeUpdates, Nodes};
use crate::metrics::ReinitBy;
use fio_api::accept::{AcceptRequests, UpdateWindow};
use fio_api::aideconf;
use fio_api::reinit::parse_node_list;

use crate::controller::silence;
use fio_api::{
    names, FileIntegrity, FileIntegrityNodeCondition, FileIntegrityNodeStatus, FileIntegrityStatus,
    FileIntegrityStatusPhase as Phase, Holdoff, NodePause, ReinitRequests,
};

/// How often a FileIntegrity is looked at without any event (missed events, user ConfigMaps in
/// other namespaces).
pub const RESYNC: Duration = Duration::from_secs(300);

/// The configuration the FileIntegrity asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// Rendered text, to be validated.
    Text(String),
    /// Keep what is deployed (the user's ConfigMap or key is missing, as upstream).
    Keep,
}

/// Everything [`plan`] looks at.
pub struct Observed<'a> {
    pub fi: &'a FileIntegrity,
    pub namespace: &'a str,
    /// The daemon image.
    pub image: &'a str,
    /// `aide.conf` of the config ConfigMap `<fi>`, when deployed.
    pub deployed: Option<&'a str>,
    /// Whether that ConfigMap still has its owner and aide-conf labels (someone may remove
    /// them: upstream bug 2049206); without them it is written again.
    pub deployed_labelled: bool,
    pub wanted: Wanted,
    pub nodes: &'a Nodes,
    /// The FileIntegrity's node statuses.
    pub statuses: &'a [FileIntegrityNodeStatus],
    pub daemonset: Option<&'a DaemonSet>,
    /// Whether `spec.priorityClassName` exists (`None`: none is named).
    pub priority_class_found: Option<bool>,
    /// The MachineConfigPools (`None`: the API does not exist, or nothing is paused).
    pub pools: Option<&'a [Pool]>,
    /// How long a node may stay paused for an update before it is reported.
    pub max_pause: Duration,
    /// Without the pool API, re-initialise on the node's own annotations (upstream).
    pub trust_node_annotations: bool,
    /// Whether the daemons' admission policy is in force.
    pub admission: &'a Admission,
    pub now: Timestamp,
}

/// An Event to publish about the FileIntegrity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// What the request bookkeeping writes, and what it counts once written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestsWrite {
    /// The metadata merge patch (a compare-and-swap on resourceVersion).
    pub patch: Option<serde_json::Value>,
    pub triggers: Vec<ReinitBy>,
    pub paused: Vec<String>,
    pub resumed: Vec<String>,
    /// Resumed without a re-init (the update was not confirmed).
    pub released: Vec<String>,
}

/// The phase and message to write; [`Plan::status`] carries them with the re-init record.
pub type StatusWrite = (Phase, Option<String>);
/// A phase change and the `error` kind it counts if the phase is Error.
pub type PhaseChange = (Phase, &'static str);

/// Everything reconciling writes, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config ConfigMap `<fi>`, when its text changes.
    pub config_map: Option<ConfigMap>,
    pub requests: RequestsWrite,
    /// The DaemonSet (with its spec hash), when it changes; never during the initial delay.
    pub daemonset: Option<DaemonSet>,
    /// The resourceVersion of the DaemonSet upstream's controller wrote, which [`Plan::daemonset`]
    /// takes over (see [`adoption`]) instead of being applied over it.
    pub take_over_daemonset: Option<String>,
    /// The nodes `fi` selects (whose result ConfigMaps its daemons may update).
    pub selected: BTreeSet<String>,
    /// Node statuses of nodes that no longer exist.
    pub stale_statuses: Vec<String>,
    /// The result ConfigMaps of those nodes.
    pub stale_results: Vec<String>,
    /// Node statuses marked silent (no result for too long) or no longer selected, to replace
    /// at the resourceVersion they were read at: a result arriving meanwhile wins.
    pub silent: Vec<FileIntegrityNodeStatus>,
    /// The whole status we own (phase, message, the re-init record's copy), when any of it
    /// changes.
    pub status: Option<FileIntegrityStatus>,
    /// The phase moved: count it (and its error kind).
    pub phase_changed: Option<PhaseChange>,
    pub events: Vec<PlannedEvent>,
    pub requeue: Duration,
}

fn selected(fi: &FileIntegrity, nodes: &Nodes) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|(_, node)| {
            fi.spec
                .node_selector
                .iter()
                .all(|(k, v)| node.labels.get(k) == Some(v))
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// Decide what reconciling `o.fi` changes.
pub fn plan(o: &Observed) -> Plan {
    let fi = o.fi;
    let name = fi.name_any();
    let mut events = Vec::new();

    // 1. Configuration: the rendered text in ConfigMap `<fi>`; an invalid one is not deployed.
    // What stays in use when the wanted config is missing or invalid: the deployed one, or the
    // default when nothing is deployed yet.
    let kept = || o.deployed.unwrap_or(aideconf::DEFAULT_CONFIG).to_owned();
    let mut config_error = None;
    let config = match &o.wanted {
        Wanted::Text(text) => match aideconf::validate(text) {
            Ok(()) => text.clone(),
            Err(e) => {
                let (cns, cname) = fi
                    .spec
                    .config
                    .user_config_map()
                    .unwrap_or((o.namespace, &name));
                config_error = Some(format!(
                    "invalid AIDE configuration in ConfigMap {cns}/{cname} key {}: {e}",
                    fi.spec.config.data_key()
                ));
                kept()
            }
        },
        Wanted::Keep => kept(),
    };
    // Rules that cannot be used accept nothing, visibly (the phase names the rule).
    let mut config_error_kind = "InvalidConfig";
    if config_error.is_none() {
        if let Err(e) = fio_api::expected::Rules::compile(&fi.spec.rules()) {
            config_error = Some(format!("invalid expected changes: {e}"));
            config_error_kind = "InvalidExpectedChanges";
        } else if fi.spec.platform_rules && !fi.spec.attribution() {
            // Rules accept only changes whose writers are named: without, the platform's
            // files would be monitored with nothing to accept their rotations.
            config_error = Some(
                "platformRules: needs writers named (spec.realtime enabled, attribution on)".into(),
            );
            config_error_kind = "InvalidExpectedChanges";
        }
    }
    let config_map = (o.deployed != Some(config.as_str()) || !o.deployed_labelled)
        .then(|| config_map(fi, o.namespace, &config));

    // 2. Re-init requests, after the config (a daemon that sees a request finds its config).
    let selected = selected(fi, o.nodes);
    let (requests, updates, write) = update_requests(o, &config, &selected, &mut events);
    let holdoff = updates.holdoff.clone();
    let pauses = &updates.pauses;

    // 3. The DaemonSet (after the initial delay).
    if o.daemonset.is_none() {
        if let Some(wait) = initial_delay_left(fi, o.now) {
            let pending = (Phase::Pending, Some("waiting for initialDelay".to_owned()));
            let kind = if config_error.is_some() {
                config_error_kind
            } else {
                "NodeErrored"
            };
            let (status, phase_changed) = status_change(fi, pending, &requests, pauses, kind);
            push_phase_event(&mut events, phase_changed, status.as_ref());
            return Plan {
                config_map,
                requests: write,
                daemonset: None,
                take_over_daemonset: None,
                selected,
                stale_statuses: Vec::new(),
                stale_results: Vec::new(),
                silent: Vec::new(),
                status,
                phase_changed,
                events,
                requeue: updates.next_due.map_or(wait, |d| d.min(wait)),
            };
        }
    }
    let priority_class = match o.priority_class_found {
        None => None,
        Some(true) => Some(fi.spec.priority_class_name.clone()),
        Some(false) => {
            events.push(PlannedEvent {
                warning: true,
                reason: names::EVENT_REASON_PRIORITY_CLASS,
                note: format!(
                    "Error while getting priority class '{}', PriorityClass not found or invalid",
                    fi.spec.priority_class_name
                ),
            });
            None
        }
    };
    let mut desired = daemonset::build(fi, o.namespace, o.image, priority_class);
    let hash = fio_core::hash::sha256_hex(&serde_json::to_vec(&desired).unwrap_or_default());
    let current_hash = o.daemonset.and_then(|d| {
        d.annotations()
            .get(daemonset::SPEC_HASH_ANNOTATION)
            .cloned()
    });
    // 3a. One written by upstream's controller is taken over, not applied over.
    let take_over_daemonset = o
        .daemonset
        .filter(|d| adoption::written_by_upstream(d))
        .map(|d| d.resource_version().unwrap_or_default());
    let changed = current_hash.as_deref() != Some(hash.as_str());
    let daemonset = (changed || take_over_daemonset.is_some()).then(|| {
        desired
            .annotations_mut()
            .insert(daemonset::SPEC_HASH_ANNOTATION.into(), hash);
        desired
    });
    // A DaemonSet written now is rolling out, whatever its old status said.
    let rolling;
    let ds_after = match (&daemonset, o.daemonset) {
        (Some(_), _) => {
            rolling = DaemonSet::default();
            Some(&rolling)
        }
        (None, current) => current,
    };

    // 4. Node statuses of nodes that no longer exist (upstream OCPBUGS-15090), their result
    // ConfigMaps and kept histories of accepted changes.
    let gone: Vec<&FileIntegrityNodeStatus> = o
        .statuses
        .iter()
        .filter(|st| !o.nodes.contains_key(&st.spec.node_name))
        .collect();
    let stale_statuses = gone.iter().map(|st| st.name_any()).collect();
    let stale_results = gone
        .iter()
        .flat_map(|st| {
            let node = &st.spec.node_name;
            [
                names::result_configmap_name(&name, node),
                names::accepted_configmap_name(&name, node),
            ]
        })
        .collect();

    // 4b. Nodes that have gone silent (not while paused: a paused daemon does not report).
    let interval = fi.spec.config.scan_interval();
    let mut requeue = updates.next_due.map_or(RESYNC, |d| d.min(RESYNC));
    let mut silent = Vec::new();
    for st in o.statuses {
        let node = &st.spec.node_name;
        let marked = if !selected.contains(node) {
            // 4c. Relabelled out of the selection (the node still exists): not scanned any
            // more, visibly, once.
            let unmarked = !silence::is_unselected(&st.spec.last_result);
            (o.nodes.contains_key(node) && unmarked)
                .then(|| silence::mark_unselected(st, &name, o.now))
        } else if holdoff.holds(node) {
            None
        } else {
            match silence::silent_at(st, interval) {
                Some(at) if at <= o.now => Some(silence::mark_silent(st, interval, o.now)),
                Some(at) => {
                    if let Ok(left) = Duration::try_from(o.now.duration_until(at)) {
                        requeue = requeue.min(left + Duration::from_secs(1));
                    }
                    None
                }
                None => None,
            }
        };
        if let Some(marked) = marked {
            events.push(PlannedEvent {
                warning: true,
                reason: names::EVENT_REASON_NODE_INTEGRITY_STATUS,
                note: format!(
                    "node {node} has an error! {}",
                    marked.spec.last_result.error_message
                ),
            });
            silent.push(marked);
        }
    }

    // 5. Phase. Without the admission policy no result can be trusted to be its node's.
    let has_config_error = config_error.is_some();
    let admission_error = o.admission.verdict(&selected, o.statuses);
    let error_kind = match (&config_error, &admission_error) {
        (Some(_), _) => config_error_kind,
        (None, Some(_)) => "AdmissionPolicy",
        (None, None) => "NodeErrored",
    };
    let (mut phase, mut message) = phase(ds_after, config_error, &selected, o.statuses, &requests);
    if let (Some(why), false) = (admission_error, has_config_error) {
        (phase, message) = (Phase::Error, Some(why));
    }
    if phase == Phase::Active && message.is_none() {
        message = match &holdoff {
            Holdoff::None => None,
            Holdoff::All => Some(format!(
                "scans paused on every node ({})",
                names::HOLDOFF_ANNOTATION
            )),
            Holdoff::Nodes(_) => holdoff
                .to_annotation()
                .map(|nodes| format!("scans paused during a node update: {nodes}")),
        };
    }
    let (status, phase_changed) =
        status_change(fi, (phase, message), &requests, pauses, error_kind);
    push_phase_event(&mut events, phase_changed, status.as_ref());
    Plan {
        config_map,
        requests: write,
        daemonset,
        take_over_daemonset,
        selected,
        stale_statuses,
        stale_results,
        silent,
        status,
        phase_changed,
        events,
        requeue,
    }
}

/// The status write, if the phase, message or re-init record differ from the FileIntegrity's,
/// and the phase change with the `error` kind of an Error phase.
fn status_change(
    fi: &FileIntegrity,
    (phase, message): StatusWrite,
    requests: &ReinitRequests,
    pauses: &BTreeMap<String, NodePause>,
    error_kind: &'static str,
) -> (Option<FileIntegrityStatus>, Option<PhaseChange>) {
    let before = fi.status.as_ref().and_then(|s| s.phase);
    let wanted = FileIntegrityStatus {
        phase: Some(phase),
        message,
        reinit_requests: Some(requests.clone()),
        node_pauses: pauses.clone(),
    };
    let write = (fi.status.as_ref() != Some(&wanted)).then_some(wanted);
    (
        write,
        (before != Some(phase)).then_some((phase, error_kind)),
    )
}

/// Upstream's Event on a phase change (its note is the phase); an Error caused by the admission
/// policy says why, since nothing else on the FileIntegrity points at it.
fn push_phase_event(
    events: &mut Vec<PlannedEvent>,
    changed: Option<PhaseChange>,
    status: Option<&FileIntegrityStatus>,
) {
    if let Some((phase, kind)) = changed {
        let note = match (kind, status.and_then(|s| s.message.as_deref())) {
            ("AdmissionPolicy", Some(why)) if phase == Phase::Error => format!("Error: {why}"),
            _ => phase.as_str().to_owned(),
        };
        events.push(PlannedEvent {
            warning: phase == Phase::Error,
            reason: names::EVENT_REASON_FILE_INTEGRITY_STATUS,
            note,
        });
    }
}

fn config_map(fi: &FileIntegrity, namespace: &str, config: &str) -> ConfigMap {
    let name = fi.name_any();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (names::AIDE_CONFIG_LABEL.into(), String::new()),
                (names::OWNER_LABEL.into(), name),
            ])),
            owner_references: fi.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            names::DEFAULT_CONFIG_DATA_KEY.into(),
            config.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}

/// Turn `re-init`, `re-init-on-failed` and a config change into requests, in one metadata write
/// that also removes the user's annotations and records which nodes are paused for a
/// MachineConfig update. Returns the requests and the pause in force, and the write.
fn update_requests(
    o: &Observed,
    config: &str,
    selected: &BTreeSet<String>,
    events: &mut Vec<PlannedEvent>,
) -> (ReinitRequests, NodeUpdates, RequestsWrite) {
    let (fi, nodes, statuses) = (o.fi, o.nodes, o.statuses);
    let name = fi.name_any();
    let config_hash = aideconf::config_hash(config);
    let recorded = ReinitRequests::recorded(fi);
    let annotated = match ReinitRequests::annotated(fi) {
        Ok(r) => r,
        Err(e) => {
            events.push(PlannedEvent {
                warning: true,
                reason: "ReinitRequests",
                note: format!("{e}; using the copy in the status"),
            });
            None
        }
    };
    // The annotation can be lost to a client replacing the metadata; the status copy cannot.
    let existing = ReinitRequests::merge(annotated.clone(), recorded);
    let mut requests = existing.clone().unwrap_or_default();
    let annotations = fi.annotations();
    let mut write = RequestsWrite::default();
    if existing.is_none() {
        // A new FileIntegrity: nodes without a database initialise anyway.
        requests.config = config_hash;
    } else if requests.config != config_hash {
        requests.request(selected.iter().map(String::as_str));
        requests.config = config_hash;
        tracing::info!("configuration of {name} changed: re-initialising every node");
        write.triggers.push(ReinitBy::Config);
    }
    if annotations.contains_key(names::REINIT_ON_FAILED_ANNOTATION) {
        let failed: Vec<&str> = statuses
            .iter()
            .filter(|s| s.spec.last_result.condition == FileIntegrityNodeCondition::Failed)
            .map(|s| s.spec.node_name.as_str())
            .filter(|n| selected.contains(*n))
            .collect();
        tracing::info!("re-init-on-failed on {name}: {failed:?}");
        requests.request(failed);
        write.triggers.push(ReinitBy::Demand);
    }
    if let Some(value) = annotations.get(names::REINIT_ANNOTATION) {
        let wanted = match parse_node_list(value) {
            None => selected.clone(),
            Some(list) => {
                let (ok, unknown): (BTreeSet<String>, BTreeSet<String>) =
                    list.into_iter().partition(|n| selected.contains(n));
                if !unknown.is_empty() {
                    let unknown: Vec<_> = unknown.into_iter().collect();
                    events.push(PlannedEvent {
                        warning: true,
                        reason: "ReinitIgnored",
                        note: format!(
                            "re-init of nodes not selected by {name} ignored: {}",
                            unknown.join(",")
                        ),
                    });
                }
                ok
            }
        };
        tracing::info!("re-init on {name}: {wanted:?}");
        requests.request(wanted.iter().map(String::as_str));
        write.triggers.push(ReinitBy::Demand);
    }
    let holdoff = Holdoff::of(fi);
    let pauses = fi
        .status
        .as_ref()
        .map(|s| s.node_pauses.clone())
        .unwrap_or_default();
    let updates = updates::follow(
        &holdoff,
        &pauses,
        selected,
        nodes,
        o.pools,
        o.now,
        updates::Settings {
            max_pause: o.max_pause,
            trust_annotations: o.trust_node_annotations,
        },
    );
    let (paused, resumed) = (&updates.paused, &updates.resumed);
    if !resumed.is_empty() {
        tracing::info!(
            "{name}: MachineConfig update over on {resumed:?}: its changes are judged by the \
             update's window"
        );
    }
    if !paused.is_empty() {
        tracing::info!("{name}: MachineConfig update on {paused:?}: scans paused");
    }
    for (n, why) in &updates.released {
        tracing::warn!("{name}: MachineConfig update of {n} not confirmed: {why}");
        events.push(PlannedEvent {
            warning: true,
            reason: names::EVENT_REASON_UPDATE_UNCONFIRMED,
            note: format!(
                "scans on node {n} resume without a re-init: its MachineConfig update was not confirmed by its pool: {why}"
            ),
        });
    }
    for n in &updates.overdue {
        let since = updates
            .pauses
            .get(n)
            .map(|p| p.since.0.to_string())
            .unwrap_or_default();
        events.push(PlannedEvent {
            warning: true,
            reason: names::EVENT_REASON_PAUSED_TOO_LONG,
            note: format!(
                "scans on node {n} have been paused for a MachineConfig update since {since}, longer than {}s",
                o.max_pause.as_secs()
            ),
        });
    }
    let new_holdoff = updates.holdoff.clone();
    requests.nodes.retain(|n, _| nodes.contains_key(n));

    // A confirmed update's window (issue 28), judged by the node's next check, and an
    // administrator's acceptance, asked of the nodes beside their pending requests (the
    // annotation removed, as a re-init's).
    let accept_before = AcceptRequests::of(fi).ok().flatten().unwrap_or_default();
    let mut accepting = accept_before.clone();
    for (n, w) in &updates.windows {
        let last = statuses
            .iter()
            .find(|s| s.spec.node_name == *n)
            .map(|s| &s.spec.last_result);
        let listed_all_before = last.is_some_and(|r| match r.condition {
            FileIntegrityNodeCondition::Succeeded => true,
            FileIntegrityNodeCondition::Failed => r.changes_truncated == 0,
            _ => false,
        });
        let w = UpdateWindow {
            listed_all_before,
            ..w.clone()
        };
        accepting.windows.insert(n.clone(), w);
    }
    accepting.retain_nodes(|n| nodes.contains_key(n));
    let administered =
        crate::controller::results::acceptance::administrator(fi, &accepting, statuses, selected);
    if let Some(a) = &administered {
        tracing::info!("acceptance on {name}: asked {:?}", a.requests.nodes.keys());
        for why in &a.ignored {
            events.push(PlannedEvent {
                warning: true,
                reason: names::EVENT_REASON_ACCEPT_IGNORED,
                note: format!("acceptance on {name}: {why}"),
            });
        }
    }

    let user_annotations = annotations.contains_key(names::REINIT_ANNOTATION)
        || annotations.contains_key(names::REINIT_ON_FAILED_ANNOTATION)
        || administered.is_some();
    let holdoff_changed = new_holdoff != holdoff;
    let accepting = administered.map_or(accepting, |a| a.requests);
    let accepting_changed = accepting != accept_before;
    if annotated.as_ref() != Some(&requests)
        || user_annotations
        || holdoff_changed
        || accepting_changed
    {
        // resourceVersion makes this a compare-and-swap: if the user changed the annotations
        // since we read them, the write fails (409) and the reconcile runs again.
        let mut patch = json!({"metadata": {
            "resourceVersion": fi.resource_version(),
            "annotations": {
                names::REINIT_ANNOTATION: null,
                names::REINIT_ON_FAILED_ANNOTATION: null,
                names::REINIT_REQUESTS_ANNOTATION: requests.to_annotation(),
            }
        }});
        if holdoff_changed {
            patch["metadata"]["annotations"][names::HOLDOFF_ANNOTATION] =
                json!(new_holdoff.to_annotation());
        }
        let annotations = &mut patch["metadata"]["annotations"];
        if fi.annotations().contains_key(names::ACCEPT_ANNOTATION)
            || fi.annotations().contains_key(names::ACCEPT_BY_ANNOTATION)
        {
            annotations[names::ACCEPT_ANNOTATION] = json!(null);
            annotations[names::ACCEPT_BY_ANNOTATION] = json!(null);
        }
        if accepting_changed {
            annotations[names::ACCEPT_REQUESTS_ANNOTATION] = json!(accepting.to_annotation());
        }
        write.patch = Some(patch);
        write.paused = updates.paused.clone();
        write.resumed = updates.resumed.clone();
        write.released = updates.released.iter().map(|(n, _)| n.clone()).collect();
    } else {
        write.triggers.clear();
    }
    (requests, updates, write)
}

fn initial_delay_left(fi: &FileIntegrity, now: Timestamp) -> Option<Duration> {
    let delay = fi.spec.config.initial_delay;
    if delay <= 0 {
        return None;
    }
    let created = fi.metadata.creation_timestamp.as_ref()?.0;
    let elapsed = now.duration_since(created).as_secs();
    // The remaining delay (upstream re-queued for the whole delay again).
    (elapsed < delay).then(|| Duration::from_secs((delay - elapsed) as u64))
}

fn phase(
    ds: Option<&DaemonSet>,
    config_error: Option<String>,
    selected: &BTreeSet<String>,
    statuses: &[FileIntegrityNodeStatus],
    requests: &ReinitRequests,
) -> (Phase, Option<String>) {
    if let Some(e) = config_error {
        return (Phase::Error, Some(e));
    }
    let Some(ds) = ds else {
        return (Phase::Pending, None);
    };
    let current: Vec<&FileIntegrityNodeStatus> = statuses
        .iter()
        .filter(|s| selected.contains(&s.spec.node_name))
        .collect();
    let errored: Vec<String> = current
        .iter()
        .filter(|s| s.spec.last_result.condition == FileIntegrityNodeCondition::Errored)
        .map(|s| format!("{}: {}", s.spec.node_name, s.spec.last_result.error_message))
        .collect();
    if !errored.is_empty() {
        return (Phase::Error, Some(errored.join("; ")));
    }
    if !daemonset::is_ready(ds) {
        return (
            Phase::Initializing,
            Some("the scan DaemonSet is rolling out".into()),
        );
    }
    let confirmed: BTreeMap<&str, i64> = current
        .iter()
        .map(|s| (s.spec.node_name.as_str(), s.spec.reinit_id.unwrap_or(0)))
        .collect();
    let pending: Vec<&str> = selected
        .iter()
        .map(String::as_str)
        .filter(|n| requests.requested(n) > confirmed.get(n).copied().unwrap_or(0))
        .collect();
    if !pending.is_empty() {
        return (
            Phase::Initializing,
            Some(format!("re-initialising: {}", pending.join(","))),
        );
    }
    // The DaemonSet keeps counting a pod of a deleted node until the pod GC removes it; nodes
    // that no longer exist are not waited for.
    let desired = ds
        .status
        .as_ref()
        .map_or(0, |s| s.desired_number_scheduled)
        .min(selected.len() as i32);
    if (current.len() as i32) < desired {
        return (
            Phase::Initializing,
            // No count: a message that changed with every node would be a status write per
            // node's first result (1,000 on a large cluster).
            Some("waiting for the first scan of every node".into()),
        );
    }
    (Phase::Active, None)
}

#[cfg(test)]
mod tests;
