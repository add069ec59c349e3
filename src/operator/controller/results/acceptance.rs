//! Expected changes accepted per path (issue 28), as the results plan decides them: which
//! listed changes of a Failed result the FileIntegrity's rules expect, the request that moves
//! the node's baseline for those paths only, and the records the node status keeps. Pure.
//!
//! A rule can only accept: the result reads Succeeded only when every change it counts is
//! listed and expected; otherwise it stays Failed (the expected ones are still requested, so
//! the other changes are what remains once the node has moved them).

use std::collections::{BTreeMap, BTreeSet};

use fio_api::accept::{fingerprint, AcceptPath, AcceptRequest, AcceptRequests, Accepted, Demand};
use fio_api::expected::{update_writer, Rules, UpdateWriter};
use fio_api::result::{ScanCondition, ScanReport};
use fio_api::{
    AcceptedChange, FileChange, FileIntegrity, FileIntegrityNodeCondition as Condition,
    FileIntegrityNodeStatus, FileIntegrityScanResult, WriterPod, MAX_ACCEPTED,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

/// Pods the operator read, by namespace and name: their uid and labels.
pub type Pods = BTreeMap<(String, String), (String, BTreeMap<String, String>)>;

/// An administrator's acceptance (the `accept` annotation) resolved against the nodes' last
/// results: the requests with it, and what could not be asked (why, for an Event).
#[derive(Debug, Clone, PartialEq)]
pub struct Administered {
    pub requests: AcceptRequests,
    pub ignored: Vec<String>,
}

/// The most reasons an [`Administered`] keeps.
const MAX_IGNORED: usize = 10;

/// Resolve `fi`'s `accept` annotation (`None`: there is none): each named path of a node's last
/// Failed result is asked with the change the status lists (its fingerprint: a path written
/// again meanwhile is not moved), beside the node's pending request. A node `fi` does not
/// scan, a path not listed, or changes not listed for `*` are ignored, and said.
pub fn administrator(
    fi: &FileIntegrity,
    requests: &AcceptRequests,
    statuses: &[FileIntegrityNodeStatus],
    selected: &BTreeSet<String>,
) -> Option<Administered> {
    let mut out = Administered {
        requests: requests.clone(),
        ignored: Vec::new(),
    };
    let demand = match Demand::of(fi)? {
        Ok(d) => d,
        Err(e) => {
            out.ignored.push(e.to_string());
            return Some(out);
        }
    };
    let by = format!("administrator {}", demand.by);
    for (node, paths) in &demand.nodes {
        let status = statuses
            .iter()
            .find(|s| s.spec.node_name == *node)
            .filter(|_| selected.contains(node));
        let Some(status) = status else {
            out.ignored
                .push(format!("node {node}: not scanned by {}", fi.name_any()));
            continue;
        };
        let last = &status.spec.last_result;
        if last.condition != Condition::Failed {
            out.ignored.push(format!(
                "node {node}: no current change (last result {})",
                last.condition.as_str()
            ));
            continue;
        }
        let every = paths.iter().any(|p| p == "*");
        let asked: Vec<AcceptPath> = last
            .changes
            .iter()
            .filter(|c| every || paths.contains(&c.path))
            .map(|c| AcceptPath {
                path: c.path.clone(),
                change: fingerprint(c),
                by: by.clone(),
            })
            .collect();
        for p in paths {
            if p != "*" && !last.changes.iter().any(|c| c.path == *p) {
                out.ignored
                    .push(format!("node {node}: {p} is not a change its status lists"));
            }
        }
        if asked.is_empty() && last.changes.is_empty() {
            out.ignored
                .push(format!("node {node}: its status lists no change"));
        }
        if every && last.changes_truncated > 0 {
            out.ignored.push(format!(
                "node {node}: {} more changes not listed in its status (accepted once listed)",
                last.changes_truncated
            ));
        }
        if !asked.is_empty() {
            let completed = status.spec.accept_id.unwrap_or(0);
            out.requests.request_more(node, asked, completed);
        }
    }
    out.ignored.truncate(MAX_IGNORED);
    Some(out)
}

/// The pods (namespace, name) a Failed result of `node` names as writers of its listed
/// changes, when a rule of `fi` allows pod writers or the node has an update window (the
/// machine-config daemon's pods); otherwise none is worth reading. In order, once each.
pub fn writer_pods(fi: &FileIntegrity, node: &str, cm: &ConfigMap) -> Vec<(String, String)> {
    let pod_rules = fi.spec.platform_rules
        || fi
            .spec
            .expected_changes
            .iter()
            .any(|r| r.writers.iter().any(|w| w.kind != "unit"));
    let window = || {
        AcceptRequests::of(fi)
            .ok()
            .flatten()
            .is_some_and(|r| r.windows.contains_key(node))
    };
    if !pod_rules && !window() {
        return Vec::new();
    }
    let Ok(report) = ScanReport::from_config_map(cm) else {
        return Vec::new();
    };
    let ScanCondition::Failed {
        changes: Some(c), ..
    } = &report.condition
    else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    for p in c
        .summary
        .listed
        .iter()
        .flat_map(|c| &c.writers)
        .filter_map(|w| w.pod.as_ref())
    {
        let key = (p.namespace.clone(), p.name.clone());
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen
}

/// How long after its confirmation a node update's window waits for the node's first check
/// (a reboot and a full scan take minutes; a node that stays silent longer is reported, and its
/// later changes are judged as ever).
pub const WINDOW_LIFE: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the rules and a node update's window make of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepting {
    /// The FileIntegrity's acceptance record with this node's request (or without its closed
    /// window), when it changes.
    pub requests: Option<AcceptRequests>,
    /// Every change the result counts is listed and expected.
    pub all: bool,
    /// The expected changes, as requested.
    pub records: Vec<AcceptedChange>,
}

/// The expected changes of `result` (a result of `node` created at `probe`, which completed
/// acceptance request `completed`), or `None` when nothing is expected and no window closes
/// (or the rules cannot be used: the FileIntegrity's phase says why).
///
/// A change is expected by the first rule that expects it ([`Rules::expects`]), else by the
/// node's update window when the result came after it: listed for the first time since the
/// update began (`since`), and written by the machine-config daemon, or by no named writer
/// when the node's last check before the update listed everything (the record says the writer
/// was not named). The window closes with the first check after it, Failed or Succeeded.
pub fn expected(
    fi: &FileIntegrity,
    node: &str,
    completed: i64,
    result: &FileIntegrityScanResult,
    pods: &Pods,
    probe: &Time,
) -> Option<Accepting> {
    let before = AcceptRequests::of(fi).ok().flatten().unwrap_or_default();
    let closing = before
        .windows
        .get(node)
        .filter(|w| probe.0 >= w.to.0 && result.condition != Condition::Errored);
    // A node that keeps its first check from coming cannot keep its window open.
    let window = closing.filter(|w| probe.0 <= w.to.0 + WINDOW_LIFE);
    // (checked before compiling: this runs for every result the operator records)
    if closing.is_none() && (!fi.spec.has_rules() || result.condition != Condition::Failed) {
        return None;
    }
    let rules = Rules::compile(&fi.spec.rules()).ok();
    let labels = |p: &WriterPod| {
        pods.get(&(p.namespace.clone(), p.name.clone()))
            .filter(|(uid, _)| *uid == p.uid)
            .map(|(_, l)| l.clone())
    };
    let by_window = |c: &FileChange| -> Option<String> {
        let w = window?;
        let new = c.since.as_ref().is_some_and(|t| t.0 >= w.from.0);
        match update_writer(c, &labels) {
            _ if !new => None,
            UpdateWriter::MachineConfigDaemon => Some(w.by.clone()),
            UpdateWriter::Unnamed if w.listed_all_before => {
                Some(format!("{} (writer not named)", w.by))
            }
            UpdateWriter::Unnamed | UpdateWriter::Other => None,
        }
    };
    let expected: Vec<_> = result
        .changes
        .iter()
        .filter(|_| result.condition == Condition::Failed)
        .filter_map(|c| {
            let by_rule = rules.as_ref().and_then(|r| r.expects(c, &labels));
            by_rule
                .map(|r| format!("rule {r}"))
                .or_else(|| by_window(c))
                .map(|by| (c, by))
        })
        .collect();
    let mut requests = before.clone();
    if closing.is_some() {
        requests.windows.remove(node);
    }
    if expected.is_empty() && requests == before {
        return None;
    }
    let paths: Vec<AcceptPath> = expected
        .iter()
        .map(|(c, by)| AcceptPath {
            path: c.path.clone(),
            change: fingerprint(c),
            by: by.clone(),
        })
        .collect();
    let id = if paths.is_empty() {
        0
    } else {
        requests.request(node, paths, completed)
    };
    let counted = result.files_added + result.files_changed + result.files_removed;
    let all = !expected.is_empty()
        && result.changes_truncated == 0
        && expected.len() == result.changes.len()
        && i64::try_from(expected.len()).is_ok_and(|n| n == counted);
    let records = expected
        .into_iter()
        .map(|(c, by)| record(c, by, id, probe))
        .collect();
    Some(Accepting {
        requests: (requests != before).then_some(requests),
        all,
        records,
    })
}

/// The pending record of listed change `c`, accepted by `by` under request `request`.
fn record(c: &FileChange, by: String, request: i64, at: &Time) -> AcceptedChange {
    AcceptedChange {
        path: c.path.clone(),
        kind: c.kind,
        attributes: c.attributes.clone(),
        details: c.details.clone(),
        writers: c.writers.clone(),
        by,
        request,
        requested_at: at.clone(),
        accepted_at: None,
    }
}

/// The most bytes of records a node status shows (as JSON): beside the listed changes (twice
/// [`super::CHANGES_BUDGET`]) the status stays under 16 KiB whatever a node sends.
pub const ACCEPTED_BUDGET: usize = 2 * 1024;

/// The records a node status shows: the newest, as many as fit in [`ACCEPTED_BUDGET`].
pub fn shown(mut records: Vec<AcceptedChange>) -> Vec<AcceptedChange> {
    let mut used = 2; // `[]`
    let fit = records
        .iter()
        .take_while(|r| {
            // Serialising strings cannot fail; a failure would show nothing, not too much.
            used += serde_json::to_vec(r).map_or(usize::MAX / 2, |v| v.len() + 1);
            used <= ACCEPTED_BUDGET
        })
        .count();
    records.truncate(fit);
    records
}

/// The node status's records after a result: `new` requests first (replacing a pending record
/// of the same path), then the earlier ones; the request the node `reported` completing marks
/// the paths it moved accepted and drops those it did not (their change differed by then and
/// is listed again); at most [`MAX_ACCEPTED`], newest first. A moved path with no record (an
/// administrator's, asked by the FileIntegrity controller) gets one from `asked`, the node's
/// request in force, and the change `listed` (its previous result's) names. Also returns every
/// record the node reported moved now (all of them, for the Event, the metric and the kept
/// history, though the status keeps [`MAX_ACCEPTED`]).
pub fn records(
    prev: &[AcceptedChange],
    new: Vec<AcceptedChange>,
    reported: Option<&Accepted>,
    asked: Option<&AcceptRequest>,
    listed: &[FileChange],
    probe: &Time,
) -> (Vec<AcceptedChange>, Vec<AcceptedChange>) {
    let pending_again =
        |r: &AcceptedChange| r.accepted_at.is_none() && new.iter().any(|n| n.path == r.path);
    let mut all: Vec<AcceptedChange> = prev.iter().filter(|r| !pending_again(r)).cloned().collect();
    all.splice(0..0, new);
    if let Some(done) = reported {
        let asked = asked.filter(|q| q.id == done.id);
        let mut unrecorded = Vec::new();
        for path in &done.paths {
            let recorded = all.iter().any(|r| r.request == done.id && r.path == *path);
            let why = asked.and_then(|q| q.paths.iter().find(|p| p.path == *path));
            let change = listed.iter().find(|c| c.path == *path);
            if let (false, Some(why), Some(c)) = (recorded, why, change) {
                unrecorded.push(record(c, why.by.clone(), done.id, probe));
            }
        }
        all.splice(0..0, unrecorded);
        all.retain_mut(|r| {
            if r.accepted_at.is_some() || r.request > done.id {
                return true;
            }
            if r.request == done.id && done.paths.contains(&r.path) {
                r.accepted_at = Some(probe.clone());
                return true;
            }
            // Not moved (its change differed by then), or asked by a request the completed
            // one replaced.
            false
        });
    }
    let moved = all
        .iter()
        .filter(|r| r.accepted_at.as_ref() == Some(probe))
        .cloned()
        .collect();
    all.truncate(MAX_ACCEPTED);
    (all, moved)
}

/// The most bytes the kept history holds (as JSON); the oldest records go first.
pub const HISTORY_BUDGET: usize = 256 * 1024;

/// The kept history after `moved` (records the node just reported moved): those first, then
/// the `kept` ones (its ConfigMap's text; unreadable or absent: none, and `false` says it was
/// unreadable), a record once (its request and path), newest first, within
/// [`HISTORY_BUDGET`].
pub fn history(kept: Option<&str>, moved: &[AcceptedChange]) -> (String, bool) {
    let (earlier, readable): (Vec<AcceptedChange>, bool) = match kept {
        None => (Vec::new(), true),
        Some(text) => match serde_json::from_str(text) {
            Ok(v) => (v, true),
            Err(_) => (Vec::new(), false),
        },
    };
    let mut all: Vec<AcceptedChange> = moved.to_vec();
    for r in earlier {
        if !all
            .iter()
            .any(|a| a.request == r.request && a.path == r.path)
        {
            all.push(r);
        }
    }
    let mut used = 2;
    let fit = all
        .iter()
        .take_while(|r| {
            used += serde_json::to_vec(r).map_or(usize::MAX / 2, |v| v.len() + 1);
            used <= HISTORY_BUDGET
        })
        .count();
    all.truncate(fit);
    (serde_json::to_string(&all).unwrap_or_default(), readable)
}

#[cfg(test)]
mod tests;
