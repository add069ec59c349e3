//! Reconcile one result ConfigMap of a daemon (`aide-<fi>-<node>`, label
//! `file-integrity.openshift.io/log`), as the seed says: record it in the node status
//! `<fi>-<node>` with the ConfigMap's resourceVersion (so a result is processed once, even if the
//! operator stops before deleting it), keep a failure report in `<name>-failed` (not owned by the
//! FileIntegrity, so it outlives it), publish an Event on a new failure or a change of
//! condition, and delete the result. A node holds at most one unprocessed result per
//! FileIntegrity (the daemons' admission policy); its daemon waits to create the next.
//!
//! The controller watches the results' metadata only (a Failed result may carry a 1 MiB
//! report); a Succeeded result's annotations are its whole verdict and stay in the watch's copy.
//! [`reconcile`] reads (the FileIntegrity from the cache first: a result whose owner is gone is
//! deleted without being fetched; then any other result whole; the node's previous status from
//! the cache), [`plan`] decides (a pure function of those), [`apply`] writes (conditionally on
//! the status it planned from: a stale copy is read again and planned again).

use std::collections::BTreeMap;
use std::sync::Arc;

use fio_api::result::{ScanCondition, ScanFigures, ScanReport};
use fio_api::{
    names, FileChange, FileIntegrity, FileIntegrityNodeCondition as Condition,
    FileIntegrityNodeStatus, FileIntegrityNodeStatusFields, FileIntegrityScanResult,
    ReinitRequests,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PartialObjectMeta, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::context::Context;
use super::error::{Error, KubeContext, Step};

/// Everything processing one result writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultPlan {
    pub owner: String,
    pub node: String,
    /// The persistent copy of a failure report (`<result>-failed`).
    pub kept_report: Option<ConfigMap>,
    pub status: FileIntegrityNodeStatus,
    /// `(warning, note)` of the node's Event, when the result is news.
    pub event: Option<(bool, String)>,
    /// The node's last condition changed (or it had none).
    pub condition_changed: bool,
    /// The `error` label of `node_status_error_total`, for an Errored result.
    pub error_kind: Option<String>,
    pub mismatched: bool,
    pub figures: Option<ScanFigures>,
    /// Results the node replaced before delivering this one.
    pub superseded: u64,
    /// The Warning Event's note when the node's covered files changed and some are covered.
    pub covered_event: Option<String>,
    /// The causes of realtime gaps this result reports for the first time.
    pub new_gaps: Vec<String>,
    /// The FileIntegrity's acceptance record with a new request for this node (written before
    /// the status: the node moves its baseline for the expected changes, issue 28).
    pub accept_requests: Option<fio_api::accept::AcceptRequests>,
    /// The changes this result reports moved into the baseline, by who accepted them
    /// (`by` of the records), and the Event's note naming them.
    pub accepted: Vec<(String, u64)>,
    pub accepted_event: Option<String>,
    /// The records of the changes this result reports moved, for the node's kept history
    /// (ConfigMap `aide-<fi>-<node>-accepted`).
    pub history: Vec<fio_api::AcceptedChange>,
}

/// A result ConfigMap that cannot be attributed to a node: no owner or node label, or a name
/// that is not the canonical `aide-<fi>-<node>` of its labels (a daemon may speak only for its
/// own node, under its own name; the admission policy in `deploy/` refuses such creates, and
/// this check holds without it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unattributable {
    #[error("result ConfigMap {0}: no owner or node label")]
    Unlabelled(String),
    #[error("result ConfigMap {name}: not the result name of node {node} ({canonical}); rejected")]
    NotCanonical {
        name: String,
        node: String,
        canonical: String,
    },
}

/// The owner and node of a result: its labels, and its name must be theirs.
fn attribution(meta: &ObjectMeta) -> Result<(String, String), Unattributable> {
    let name = meta.name.clone().unwrap_or_default();
    let label = |k: &str| {
        let labels = meta.labels.as_ref()?;
        labels.get(k).filter(|v| !v.is_empty()).cloned()
    };
    let (Some(owner), Some(node)) = (label(names::OWNER_LABEL), label(names::NODE_LABEL)) else {
        return Err(Unattributable::Unlabelled(name));
    };
    let canonical = names::result_configmap_name(&owner, &node);
    if name != canonical {
        return Err(Unattributable::NotCanonical {
            name,
            node,
            canonical,
        });
    }
    Ok((owner, node))
}

/// This version of the result is the one the node status already records.
pub fn recorded(cm: &ConfigMap, prev: Option<&FileIntegrityNodeStatusFields>) -> bool {
    let version = cm.metadata.resource_version.as_ref();
    version.is_some() && prev.and_then(|p| p.result_version.as_ref()) == version
}

/// Decide what the result `cm` of `fi` changes, given the node's previous status. `now` is the
/// probe time when the ConfigMap carries no time of its writing.
pub fn plan(
    cm: &ConfigMap,
    fi: &FileIntegrity,
    prev: Option<&FileIntegrityNodeStatusFields>,
    namespace: &str,
    now: Time,
) -> Result<ResultPlan, Unattributable> {
    plan_with(cm, fi, prev, namespace, now, &acceptance::Pods::new())
}

/// [`plan`], with the pods the operator read for the writers the result names (a pod writer
/// is expected only when its pod was read with the same uid).
pub fn plan_with(
    cm: &ConfigMap,
    fi: &FileIntegrity,
    prev: Option<&FileIntegrityNodeStatusFields>,
    namespace: &str,
    now: Time,
    pods: &acceptance::Pods,
) -> Result<ResultPlan, Unattributable> {
    let (owner, node) = attribution(&cm.metadata)?;
    // When the daemon created it, by the API server's clock (each result is a new object).
    let probe = cm.metadata.creation_timestamp.clone().unwrap_or(now);
    let mut result = FileIntegrityScanResult::new(probe.clone(), Condition::Succeeded);
    let mut kept_report = None;
    let mut error_kind = None;
    let (report, reported_reinit) = match ScanReport::from_config_map(cm) {
        Ok(r) => {
            let id = r.reinit_id;
            (Some(r), id)
        }
        Err(e) => {
            // Malformed: the node's own verdict becomes an error, visibly.
            result.condition = Condition::Errored;
            result.error_message = bounded(&e.to_string());
            error_kind = Some("MalformedResult".to_owned());
            (None, None)
        }
    };
    let mut figures = None;
    let superseded = report.as_ref().map_or(0, |r| r.superseded);
    if let Some(r) = &report {
        figures = r.figures;
        if let Some(v) = &r.view {
            result.mounts_sha256 = v.digest.clone();
            result.covered_files = shown_covered(&v.covered_files);
        }
        result.realtime = r.realtime.clone().map(|c| dated_from_previous(c, prev));
        match &r.condition {
            ScanCondition::Succeeded => {}
            ScanCondition::Failed {
                counts, changes, ..
            } => {
                let kept = kept_copy(cm, namespace);
                result.condition = Condition::Failed;
                result.result_config_map_name = kept.name_any();
                result.result_config_map_namespace = namespace.to_owned();
                result.files_added = saturating(counts.added);
                result.files_changed = saturating(counts.changed);
                result.files_removed = saturating(counts.removed);
                if let Some(c) = changes {
                    let (listed, truncated) = listed_changes(&c.summary.listed, c.summary.total);
                    result.changes = listed;
                    result.changes_truncated = truncated;
                    result.changes_sha256 = c.summary.sha256.clone();
                }
                kept_report = Some(kept);
            }
            ScanCondition::Errored { exit, message } => {
                result.condition = Condition::Errored;
                result.error_message = bounded(message);
                error_kind = Some(match exit {
                    Some(e) => format!("AideExit{}", e.code()),
                    None => "DaemonError".to_owned(),
                });
            }
        }
    }

    let anchored = prev.and_then(|p| p.baseline.as_ref());
    let completed = prev.and_then(|p| p.reinit_id);
    let reinit = baseline::Asked {
        completed: completed.unwrap_or(0),
        requested: ReinitRequests::in_force(fi).map_or(0, |r| r.requested(&node)),
    };
    let accept_completed = prev.and_then(|p| p.accept_id);
    let accept = baseline::Asked {
        completed: accept_completed.unwrap_or(0),
        requested: fio_api::accept::AcceptRequests::of(fi)
            .ok()
            .flatten()
            .and_then(|r| r.for_node(&node).map(|q| q.id))
            .unwrap_or(0),
    };
    let (anchor, mismatch) = match &report {
        Some(r) => baseline::judge(anchored, reinit, accept, r, &result.last_probe_time),
        None => (anchored.cloned(), None),
    };
    let mismatched = mismatch.is_some();
    if let Some(why) = mismatch {
        result.condition = Condition::Errored;
        result.error_message = why.to_string();
        error_kind = Some(why.metric_label().to_owned());
        result.changes.clear();
        result.changes_truncated = 0;
        result.changes_sha256.clear();
    }
    let initialized = report.as_ref().is_some_and(|r| r.initialized);
    first_seen(&mut result, prev, anchor.as_ref(), initialized);

    // Expected changes (issue 28): requested per path; with nothing else, the node stays
    // Succeeded while it moves them.
    let accepting = if mismatched {
        None
    } else {
        let completed = report
            .as_ref()
            .and_then(|r| r.accepted.as_ref())
            .map(|a| a.id);
        let completed = completed.max(accept_completed).unwrap_or(0);
        acceptance::expected(fi, &node, completed, &result, pods, &probe)
    };
    if accepting.as_ref().is_some_and(|a| a.all) {
        let mut ok = FileIntegrityScanResult::new(probe.clone(), Condition::Succeeded);
        ok.mounts_sha256 = std::mem::take(&mut result.mounts_sha256);
        ok.covered_files = std::mem::take(&mut result.covered_files);
        ok.realtime = result.realtime.take();
        result = ok;
        kept_report = None;
    }
    let (accepted_changes, moved_now) = acceptance::records(
        prev.map_or(&[][..], |p| &p.accepted_changes[..]),
        accepting
            .as_ref()
            .map(|a| a.records.clone())
            .unwrap_or_default(),
        report.as_ref().and_then(|r| r.accepted.as_ref()),
        fio_api::accept::AcceptRequests::of(fi)
            .ok()
            .flatten()
            .as_ref()
            .and_then(|r| r.for_node(&node)),
        prev.map_or(&[][..], |p| &p.last_result.changes[..]),
        &probe,
    );

    let mut accepted: Vec<(String, u64)> = Vec::new();
    for r in &moved_now {
        match accepted.iter_mut().find(|(by, _)| *by == r.by) {
            Some((_, n)) => *n += 1,
            None => accepted.push((r.by.clone(), 1)),
        }
    }
    let accepted_event = (!moved_now.is_empty()).then(|| {
        let paths: Vec<String> = moved_now
            .iter()
            .take(5)
            .map(|r| format!("{} ({})", r.path, r.by))
            .collect();
        let more = moved_now.len().saturating_sub(paths.len());
        format!(
            "node {node}: {} change(s) accepted into the baseline: {}{}",
            moved_now.len(),
            paths.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    });

    let mut fields = FileIntegrityNodeStatusFields {
        node_name: node.clone(),
        results: prev.map(|p| p.results.clone()).unwrap_or_default(),
        last_result: result.clone(),
        // Only a believed result records a completed re-init.
        reinit_id: if mismatched {
            completed
        } else {
            reported_reinit.max(completed)
        },
        accept_id: if mismatched {
            accept_completed
        } else {
            report
                .as_ref()
                .and_then(|r| r.accepted.as_ref().map(|a| a.id))
                .max(accept_completed)
        },
        accepted_changes: acceptance::shown(accepted_changes),
        baseline: anchor,
        result_version: cm.metadata.resource_version.clone(),
    };
    let errored = result.condition == Condition::Errored;
    fields.record(result);
    let last = fields.last_result.clone();
    let st_name = names::node_status_name(&owner, &node);
    let mut status = FileIntegrityNodeStatus::new(&st_name, fields);
    status.metadata.namespace = Some(namespace.to_owned());
    status.metadata.labels = Some(BTreeMap::from([(names::OWNER_LABEL.into(), owner.clone())]));
    status.metadata.owner_references = fi.controller_owner_ref(&()).map(|r| vec![r]);

    let prev_last = prev.map(|p| &p.last_result);
    let event = is_news(prev_last, &last).then(|| event_note(&node, &last));
    let covered_before = prev_last.map_or(&[][..], |p| &p.covered_files[..]);
    let covered_event = (!last.covered_files.is_empty() && last.covered_files != covered_before)
        .then(|| {
            format!(
                "node {node}: files covered by mounts (a scan reads the covering content): {}",
                last.covered_files.join(", ")
            )
        });
    let new_gaps = new_gaps(&last, prev_last);
    Ok(ResultPlan {
        accept_requests: accepting.and_then(|a| a.requests),
        accepted,
        accepted_event,
        history: moved_now,
        new_gaps,
        condition_changed: prev_last.map(|p| p.condition) != Some(last.condition),
        owner,
        node,
        kept_report,
        status,
        event,
        error_kind: error_kind.filter(|_| errored),
        mismatched,
        figures,
        superseded,
        covered_event,
    })
}

/// The causes of the realtime gaps of `last` that `prev` did not list (by cause and start: the
/// operator may date a start gap earlier, so a start gap counts once per daemon by its end).
fn new_gaps(last: &FileIntegrityScanResult, prev: Option<&FileIntegrityScanResult>) -> Vec<String> {
    let known = |g: &fio_api::RealtimeGap| {
        prev.and_then(|p| p.realtime.as_ref()).is_some_and(|r| {
            r.gaps.iter().any(|k| {
                k.cause == g.cause && (k.from == g.from || (k.to.is_some() && k.to == g.to))
            })
        })
    };
    last.realtime
        .iter()
        .flat_map(|r| &r.gaps)
        .filter(|g| !known(g))
        .map(|g| g.cause.clone())
        .collect()
}

/// The most covered files a node status lists, and the longest path it shows whole.
pub const MAX_COVERED_SHOWN: usize = 10;
const MAX_COVERED_PATH: usize = 256;

/// A node's covered-files list as the status shows it: at most [`MAX_COVERED_SHOWN`] paths,
/// each cut to 256 bytes, then how many more the node reported.
fn shown_covered(reported: &[String]) -> Vec<String> {
    let mut shown: Vec<String> = reported
        .iter()
        .take(MAX_COVERED_SHOWN)
        .map(|p| fio_core::changes::cut(p, MAX_COVERED_PATH))
        .collect();
    if reported.len() > MAX_COVERED_SHOWN {
        shown.push(format!(
            "({} more lines in the result)",
            reported.len() - MAX_COVERED_SHOWN
        ));
    }
    shown
}

/// The most bytes of listed changes one result of a node status holds (as JSON): the status
/// carries them twice (`results` and `lastResult`) and stays under 16 KiB whatever a node sends.
pub const CHANGES_BUDGET: usize = 6 * 1024;

/// The changes a result shows: the node's listed ones in its order, as many as fit in
/// [`CHANGES_BUDGET`]; and how many of `total` are not shown.
fn listed_changes(listed: &[FileChange], total: u64) -> (Vec<FileChange>, i64) {
    let mut used = 2; // `[]`
    let shown: Vec<FileChange> = listed
        .iter()
        .take_while(|c| {
            // Serialising strings cannot fail; a failure would show nothing, not too much.
            used += serde_json::to_vec(c).map_or(usize::MAX / 2, |v| v.len() + 1);
            used <= CHANGES_BUDGET
        })
        .cloned()
        .collect();
    let hidden = total.saturating_sub(shown.len() as u64);
    (shown, saturating(hidden))
}

/// When each listed change was first reported: as in the node's previous Failed result when
/// that result listed the same path with the same kind and came after the baseline was
/// (re-)initialised; otherwise this result's time. A result made right after an
/// initialisation starts afresh.
/// The realtime coverage a daemon reported, its start gap dated from the node's previous
/// result when that is earlier: nothing was watched between the previous daemon's last result
/// and this daemon's start either (a daemon killed, a node rebooted). Later results of the same
/// daemon repeat the gap as the daemon dates it: the date given before is kept.
fn dated_from_previous(
    mut c: fio_api::RealtimeCoverage,
    prev: Option<&FileIntegrityNodeStatusFields>,
) -> fio_api::RealtimeCoverage {
    let start = fio_api::names::REALTIME_START_GAP;
    let Some((gap, last)) = c
        .gaps
        .iter_mut()
        .find(|g| g.cause == start)
        .zip(prev.map(|p| &p.last_result))
    else {
        return c;
    };
    let dated_before = last.realtime.as_ref().and_then(|r| {
        r.gaps
            .iter()
            .find(|g| g.cause == start && g.to == gap.to && g.from.0 <= gap.from.0)
            .or_else(|| {
                // The previous result was the first of this daemon: its gap still open.
                r.gaps
                    .iter()
                    .find(|g| g.cause == start && g.to.is_none() && g.from.0 <= gap.from.0)
            })
    });
    if let Some(before) = dated_before {
        gap.from = before.from.clone();
    } else if last.last_probe_time.0 < gap.from.0 {
        gap.from = last.last_probe_time.clone();
    }
    c
}

fn first_seen(
    result: &mut FileIntegrityScanResult,
    prev: Option<&FileIntegrityNodeStatusFields>,
    anchor: Option<&fio_api::NodeBaseline>,
    initialized: bool,
) {
    let earlier = prev
        .and_then(|p| p.results.iter().find(|r| r.condition == Condition::Failed))
        .filter(|_| !initialized)
        .filter(|r| anchor.is_none_or(|a| r.last_probe_time.0 >= a.recorded_at.0));
    let probe = result.last_probe_time.clone();
    for c in &mut result.changes {
        c.since = earlier
            .and_then(|r| {
                r.changes
                    .iter()
                    .find(|e| e.path == c.path && e.kind == c.kind)
            })
            .and_then(|e| e.since.clone())
            .filter(|t| t.0 <= probe.0)
            .or_else(|| Some(probe.clone()));
    }
}

/// The first changed paths of a Failed result, for an Event or an alert: at most three, each
/// cut to 256 bytes, then how many more.
pub fn first_changes(result: &FileIntegrityScanResult) -> Option<String> {
    if result.changes.is_empty() {
        return None;
    }
    let mut shown: Vec<String> = result
        .changes
        .iter()
        .take(3)
        .map(|c| fio_core::changes::cut(&c.path, MAX_COVERED_PATH))
        .collect();
    let more = result.changes.len().saturating_sub(3) as i64 + result.changes_truncated;
    if more > 0 {
        shown.push(format!("and {more} more"));
    }
    Some(shown.join(", "))
}

/// The most of a daemon's error text copied into a node status and its Event: a node may say
/// anything, it may not make the operator write megabytes per result.
pub const MAX_MESSAGE: usize = 4096;

/// `message` cut to [`MAX_MESSAGE`] bytes (at a character boundary), saying so.
fn bounded(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} bytes, truncated)",
        &message[..end],
        message.len()
    )
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Upstream's Event notes.
fn event_note(node: &str, last: &FileIntegrityScanResult) -> (bool, String) {
    match last.condition {
        Condition::Succeeded => (false, format!("no changes to node {node}")),
        Condition::Failed => (
            true,
            format!(
                "node {node} has changed! a:{},c:{},r:{} log:{}/{}{}",
                last.files_added,
                last.files_changed,
                last.files_removed,
                last.result_config_map_namespace,
                last.result_config_map_name,
                first_changes(last).map_or(String::new(), |f| format!(" changed: {f}"))
            ),
        ),
        Condition::Errored => (
            true,
            format!("node {node} has an error! {}", last.error_message),
        ),
    }
}

/// A condition change, or a failure with different counts (upstream's
/// `conditionIsNewFailureOrTransition`, without its metrics part) or different changes.
fn is_news(prev: Option<&FileIntegrityScanResult>, new: &FileIntegrityScanResult) -> bool {
    let Some(p) = prev else { return true };
    p.condition != new.condition
        || (new.condition == Condition::Failed
            && ((p.files_added, p.files_changed, p.files_removed)
                != (new.files_added, new.files_changed, new.files_removed)
                || p.changes_sha256 != new.changes_sha256))
}

/// The persistent copy of a failure report, `<name>-failed`: the log label dropped (so it is
/// not processed again), `result-log` added, no owner reference.
fn kept_copy(cm: &ConfigMap, namespace: &str) -> ConfigMap {
    let name = format!("{}{}", cm.name_any(), names::FAILED_RESULT_CONFIGMAP_SUFFIX);
    let mut labels = cm.labels().clone();
    labels.remove(names::LOG_LABEL);
    labels.insert(names::RESULT_LOG_LABEL.into(), String::new());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(cm.annotations().clone()),
            ..ObjectMeta::default()
        },
        data: cm.data.clone(),
        ..ConfigMap::default()
    }
}

pub async fn reconcile(
    meta: Arc<PartialObjectMeta<ConfigMap>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let ns = ctx.namespace.as_str();
    let (owner, node) = match attribution(&meta.metadata) {
        Ok(a) => a,
        Err(e @ Unattributable::Unlabelled(_)) => {
            tracing::warn!("{e}; cannot retry");
            return Ok(Action::await_change());
        }
        Err(e @ Unattributable::NotCanonical { .. }) => {
            reject(&meta.metadata, &e, &ctx).await?;
            return Ok(Action::await_change());
        }
    };
    let cm_name = meta.name_any();
    // The owner first, from the FileIntegrity controller's cache (read once when it has not
    // seen it yet): a result of no FileIntegrity is deleted without being fetched, whatever
    // its size.
    let cached = ctx
        .fis
        .get(&ObjectRef::new(&owner).within(ns))
        .map(|fi| FileIntegrity::clone(&fi));
    let fi = match cached {
        Some(fi) => Some(fi),
        None => ctx
            .api::<FileIntegrity>()
            .get_opt(&owner)
            .await
            .ctx(Step::ReadOwner, || {
                format!("reading FileIntegrity {owner} of result {cm_name}")
            })?,
    };
    let Some(fi) = fi else {
        tracing::warn!(
            "result ConfigMap {ns}/{cm_name}: FileIntegrity {owner} does not exist; deleted"
        );
        delete_processed(&meta.metadata, &ctx).await?;
        return Ok(Action::await_change());
    };
    let st_name = names::node_status_name(&owner, &node);
    // The node's previous status from the watch cache, current but for a burst from one node
    // or a cache that is behind: the write is conditional (a replace at the copy's
    // resourceVersion, or a create when the cache has none), and a write that finds the copy
    // stale reads the status from the API server and is planned again. No read per result.
    let cached = ctx
        .statuses
        .get(&ObjectRef::new(&st_name).within(ns))
        .map(|st| FileIntegrityNodeStatus::clone(&st));
    let cm = match &meta.metadata.annotations {
        // A Succeeded result, whole in the watch's copy (`cache::slim_result`): no read.
        Some(_) => Some(ConfigMap {
            metadata: meta.metadata.clone(),
            ..ConfigMap::default()
        }),
        None => ctx
            .api::<ConfigMap>()
            .get_opt(&cm_name)
            .await
            .ctx(Step::ReadResult, || {
                format!("reading result ConfigMap {ns}/{cm_name}")
            })?,
    };
    let Some(cm) = cm else {
        return Ok(Action::await_change());
    };
    let pods = writer_pods(&cm, &fi, &node, &ctx).await?;
    match record(&cm, &fi, cached.as_ref(), &pods, &ctx).await {
        Err(e) if e.is_stale_write() => {
            let fresh = ctx
                .api::<FileIntegrityNodeStatus>()
                .get_opt(&st_name)
                .await
                .ctx(Step::ReadNodeStatus, || {
                    format!("reading node status {ns}/{st_name}")
                })?;
            record(&cm, &fi, fresh.as_ref(), &pods, &ctx).await
        }
        r => r,
    }?;
    Ok(Action::await_change())
}

/// Record `cm` over `previous` (the node status it was planned from; the write fails as stale
/// when that is not the current one), or only delete it when it was recorded before (the
/// operator stopped between the two).
async fn record(
    cm: &ConfigMap,
    fi: &FileIntegrity,
    previous: Option<&FileIntegrityNodeStatus>,
    pods: &acceptance::Pods,
    ctx: &Context,
) -> Result<(), Error> {
    let prev = previous.map(|p| &p.spec);
    if recorded(cm, prev) {
        return delete_processed(&cm.metadata, ctx).await;
    }
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut plan = match plan_with(cm, fi, prev, &ctx.namespace, now, pods) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("{e}; cannot retry");
            return Ok(());
        }
    };
    plan.status.metadata.resource_version =
        previous.and_then(|p| p.metadata.resource_version.clone());
    apply(cm, fi, plan, ctx).await
}

/// The most pods one result's writers make the operator read.
const MAX_WRITER_PODS: usize = 20;

/// The pods a Failed result names as writers of its listed changes, read when a rule of `fi`
/// allows pod writers: those that exist and run on `node` (a node names pods, and may name
/// only its own: another node's pod is never its writer), at most [`MAX_WRITER_PODS`].
async fn writer_pods(
    cm: &ConfigMap,
    fi: &FileIntegrity,
    node: &str,
    ctx: &Context,
) -> Result<acceptance::Pods, Error> {
    let mut pods = acceptance::Pods::new();
    let wanted = acceptance::writer_pods(fi, node, cm);
    for (ns, name) in wanted.into_iter().take(MAX_WRITER_PODS) {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(ctx.client.clone(), &ns);
        let pod = api.get_opt(&name).await.ctx(Step::ReadWriterPod, || {
            format!("reading pod {ns}/{name}, a writer node {node} names")
        })?;
        let Some(pod) = pod else { continue };
        let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
        if on_node {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            pods.insert((ns, name), (uid, pod.labels().clone()));
        }
    }
    Ok(pods)
}

/// A result that claims another node's name (or a name that is no node's): an Event on its
/// FileIntegrity, when it names one, and the ConfigMap deleted so it squats no name.
async fn reject(meta: &ObjectMeta, why: &Unattributable, ctx: &Context) -> Result<(), Error> {
    tracing::warn!("{why}");
    let owner = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(names::OWNER_LABEL).cloned())
        .unwrap_or_default();
    let fi = ctx.fis.get(&ObjectRef::new(&owner).within(&ctx.namespace));
    if let (Some(fi), Unattributable::NotCanonical { node, .. }) = (fi, why) {
        let reason = names::EVENT_REASON_RESULT_REJECTED;
        ctx.node_event(fi.as_ref(), node, true, reason, why.to_string())
            .await;
    }
    delete_processed(meta, ctx).await
}

/// Delete exactly the ConfigMap processed (a newer one with the same name stays).
async fn delete_processed(meta: &ObjectMeta, ctx: &Context) -> Result<(), Error> {
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let cm_name = meta.name.clone().unwrap_or_default();
    match ctx.api::<ConfigMap>().delete(&cm_name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e).ctx(Step::DeleteResult, || {
            format!("deleting result ConfigMap {}/{cm_name}", ctx.namespace)
        }),
    }
}

/// Write what [`plan`] decided, then delete exactly the ConfigMap processed (uid precondition:
/// a newer result under the same name stays).
async fn apply(
    cm: &ConfigMap,
    fi: &FileIntegrity,
    plan: ResultPlan,
    ctx: &Context,
) -> Result<(), Error> {
    let ns = ctx.namespace.as_str();
    if let Some(requests) = &plan.accept_requests {
        // Conditional on the FileIntegrity read (409 when it moved: planned again).
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": fi.resource_version(),
            "annotations": {names::ACCEPT_REQUESTS_ANNOTATION: requests.to_annotation()},
        }});
        let name = fi.name_any();
        ctx.api::<FileIntegrity>()
            .patch(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .ctx(Step::RecordAccept, || {
                format!("recording acceptance requests on FileIntegrity {ns}/{name}")
            })?;
    }
    if !plan.history.is_empty() {
        // Before the status: a status written first and a failure here would lose these
        // records (the result would read as recorded). Written twice, a record is kept once.
        write_history(fi, &plan, ctx).await?;
    }
    if let Some(kept) = &plan.kept_report {
        ctx.apply(kept).await.ctx(Step::WriteFailureReport, || {
            format!("writing failure report {ns}/{}", kept.name_any())
        })?;
    }
    // A create or a replace at the resourceVersion planned from, not an apply: the operator
    // writes the whole object, and the API server parses an apply body as YAML and merges
    // field sets (profiled at 1,000 nodes: the largest share of its CPU, the limit there).
    let statuses = ctx.api::<FileIntegrityNodeStatus>();
    let st_name = plan.status.name_any();
    let pp = PostParams {
        field_manager: Some(super::context::MANAGER.to_owned()),
        ..PostParams::default()
    };
    match plan.status.metadata.resource_version {
        Some(_) => statuses.replace(&st_name, &pp, &plan.status).await,
        None => statuses.create(&pp, &plan.status).await,
    }
    .ctx(Step::WriteNodeStatus, || {
        format!("writing node status {ns}/{st_name}")
    })?;

    let m = &ctx.metrics;
    if plan.mismatched {
        tracing::warn!(
            "node {}: {}",
            plan.node,
            plan.status.spec.last_result.error_message
        );
        m.baseline_mismatch(&plan.node);
    }
    if let Some(kind) = &plan.error_kind {
        m.node_status_error(kind, &plan.node);
    }
    m.scan(
        &plan.owner,
        &plan.node,
        plan.figures.map(|f| f.seconds),
        plan.figures.map(|f| saturating(f.files)),
    );
    if plan.condition_changed {
        let last = plan.status.spec.last_result.condition;
        m.node_status(last.as_str(), &plan.node);
    }
    if let Some((warning, note)) = plan.event {
        let reason = names::EVENT_REASON_NODE_INTEGRITY_STATUS;
        ctx.node_event(fi, &plan.node, warning, reason, note).await;
    }
    if let Some(note) = plan.covered_event {
        let reason = names::EVENT_REASON_COVERED_FILES;
        ctx.node_event(fi, &plan.node, true, reason, note).await;
    }
    if plan.superseded > 0 {
        tracing::warn!(
            "node {}: {} earlier result(s) replaced on the node before delivery (the operator \
             had not processed the previous one)",
            plan.node,
            plan.superseded
        );
        m.results_superseded(&plan.node, plan.superseded);
    }
    for cause in &plan.new_gaps {
        m.realtime_gap(&plan.node, cause);
    }
    for (by, n) in &plan.accepted {
        m.accepted_changes(&plan.node, by, *n);
    }
    if let Some(note) = plan.accepted_event {
        let reason = names::EVENT_REASON_CHANGES_ACCEPTED;
        ctx.node_event(fi, &plan.node, false, reason, note).await;
    }
    delete_processed(&cm.metadata, ctx).await
}

/// Add the records of `plan.history` to the node's kept history (a replace at the
/// resourceVersion read, or a create: a conflict is planned again).
async fn write_history(fi: &FileIntegrity, plan: &ResultPlan, ctx: &Context) -> Result<(), Error> {
    let ns = ctx.namespace.as_str();
    let name = names::accepted_configmap_name(&plan.owner, &plan.node);
    let api = ctx.api::<ConfigMap>();
    let current = api
        .get_opt(&name)
        .await
        .ctx(Step::WriteAcceptedHistory, || {
            format!("reading the accepted-changes history {ns}/{name}")
        })?;
    let kept = current
        .as_ref()
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(names::ACCEPTED_HISTORY_KEY));
    let (text, readable) = acceptance::history(kept.map(String::as_str), &plan.history);
    if !readable {
        tracing::warn!(
            "{ns}/{name}: key {} is not a list of records: started anew",
            names::ACCEPTED_HISTORY_KEY
        );
    }
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_owned()),
            labels: Some(BTreeMap::from([
                (names::OWNER_LABEL.into(), plan.owner.clone()),
                (names::NODE_LABEL.into(), plan.node.clone()),
            ])),
            owner_references: fi.controller_owner_ref(&()).map(|r| vec![r]),
            resource_version: current
                .as_ref()
                .and_then(|c| c.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(names::ACCEPTED_HISTORY_KEY.into(), text)])),
        ..ConfigMap::default()
    };
    let pp = PostParams::default();
    match current {
        Some(_) => api.replace(&name, &pp, &cm).await,
        None => api.create(&pp, &cm).await,
    }
    .ctx(Step::WriteAcceptedHistory, || {
        format!("writing the accepted-changes history {ns}/{name}")
    })?;
    Ok(())
}

pub mod acceptance;
mod baseline;

#[cfg(test)]
mod tests;
