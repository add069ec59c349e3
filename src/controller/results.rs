//! Reconcile one result ConfigMap of a daemon (`aide-<fi>-<node>`, label
//! `file-integrity.openshift.io/log`): record it in the node status `<fi>-<node>`, keep failure
//! reports in `<name>-failed` (not owned by the FileIntegrity, so it outlives it, as the seed
//! says), publish an Event on a new failure or a change of condition, delete the ConfigMap.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::{Context, Error, KubeContext};
use crate::api::{
    names, FileIntegrity, FileIntegrityNodeCondition as Condition, FileIntegrityNodeStatus,
    FileIntegrityNodeStatusFields, FileIntegrityScanResult, NodeBaseline,
};

fn count(cm: &ConfigMap, key: &str) -> i64 {
    cm.annotations()
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Context>) -> Result<Action, Error> {
    let cm_name = cm.name_any();
    let ns = ctx.namespace.as_str();
    let (Some(owner), Some(node)) = (
        cm.labels().get(names::OWNER_LABEL).cloned(),
        cm.labels().get(names::NODE_LABEL).cloned(),
    ) else {
        tracing::warn!("Malformed ConfigMap {ns}/{cm_name}: no owner or node label. Cannot retry.");
        return Ok(Action::await_change());
    };
    // From the FileIntegrity controller's cache; read once when it has not seen it yet.
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
            .ctx(|| format!("reading FileIntegrity {owner} of result {cm_name}"))?,
    };
    let Some(fi) = fi else {
        // Owned by the FileIntegrity: the garbage collector removes it.
        return Ok(Action::await_change());
    };

    let probe = cm
        .metadata
        .creation_timestamp
        .clone()
        .unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now()));
    let mut result = FileIntegrityScanResult::new(probe, Condition::Succeeded);
    let log = cm
        .data
        .as_ref()
        .and_then(|d| d.get(names::INTEGRITY_LOG_KEY))
        .filter(|l| !l.is_empty());
    if let Some(msg) = cm.annotations().get(names::LOG_ERROR_ANNOTATION) {
        result.condition = Condition::Errored;
        result.error_message = msg.clone();
    } else if log.is_some() {
        let kept = keep_failure(&cm, &ctx).await?;
        result.condition = Condition::Failed;
        result.result_config_map_name = kept;
        result.result_config_map_namespace = ns.to_owned();
        result.files_added = count(&cm, names::FILES_ADDED_ANNOTATION);
        result.files_changed = count(&cm, names::FILES_CHANGED_ANNOTATION);
        result.files_removed = count(&cm, names::FILES_REMOVED_ANNOTATION);
    }
    let reinit_id = cm
        .annotations()
        .get(names::REINIT_ID_ANNOTATION)
        .and_then(|v| v.parse::<i64>().ok());

    let st_name = names::node_status_name(&owner, &node);
    let nss = ctx.api::<FileIntegrityNodeStatus>();
    let previous = nss
        .get_opt(&st_name)
        .await
        .ctx(|| format!("reading node status {ns}/{st_name}"))?;
    let prev = previous.as_ref().map(|p| &p.spec);
    let (baseline, mismatch) = check_baseline(&cm, prev, reinit_id, &result.last_probe_time);
    let mismatched = mismatch.is_some();
    if let Some(message) = mismatch {
        tracing::warn!("node {node}: {message}");
        result.condition = Condition::Errored;
        result.error_message = message;
    }
    let mut results: Vec<FileIntegrityScanResult> = prev
        .map(|p| p.results.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.condition != result.condition)
        .collect();
    results.push(result.clone());
    // The newest result is the last one; on equal times the one just received wins.
    let last = results
        .iter()
        .rev()
        .max_by_key(|r| r.last_probe_time.0)
        .cloned()
        .unwrap_or_else(|| result.clone());
    let fields = FileIntegrityNodeStatusFields {
        node_name: node.clone(),
        results,
        last_result: last.clone(),
        reinit_id: reinit_id.max(prev.and_then(|p| p.reinit_id)),
        baseline,
    };
    let mut status = FileIntegrityNodeStatus::new(&st_name, fields);
    status.metadata.namespace = Some(ns.to_owned());
    status.metadata.labels = Some(BTreeMap::from([(names::OWNER_LABEL.into(), owner.clone())]));
    status.metadata.owner_references = fi.controller_owner_ref(&()).map(|r| vec![r]);
    ctx.apply(&status)
        .await
        .ctx(|| format!("writing node status {ns}/{st_name}"))?;
    record_metrics(&ctx, &cm, &owner, &node, &result, mismatched);
    if prev.map(|p| p.last_result.condition) != Some(last.condition) {
        ctx.metrics.node_status(last.condition.as_str(), &node);
    }

    if is_news(prev.map(|p| &p.last_result), &last) {
        let (warning, note) = match last.condition {
            Condition::Succeeded => (false, format!("no changes to node {node}")),
            Condition::Failed => (
                true,
                format!(
                    "node {node} has changed! a:{},c:{},r:{} log:{}/{}",
                    last.files_added,
                    last.files_changed,
                    last.files_removed,
                    last.result_config_map_namespace,
                    last.result_config_map_name
                ),
            ),
            Condition::Errored => (
                true,
                format!("node {node} has an error! {}", last.error_message),
            ),
        };
        ctx.node_event(
            &fi,
            &node,
            warning,
            names::EVENT_REASON_NODE_INTEGRITY_STATUS,
            note,
        )
        .await;
    }

    // Delete exactly the ConfigMap we processed: a newer result with the same name stays.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cm.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match ctx.api::<ConfigMap>().delete(&cm_name, &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => return Err(e).ctx(|| format!("deleting result ConfigMap {ns}/{cm_name}")),
    }
    Ok(Action::await_change())
}

fn record_metrics(
    ctx: &Context,
    cm: &ConfigMap,
    owner: &str,
    node: &str,
    result: &FileIntegrityScanResult,
    mismatched: bool,
) {
    let m = &ctx.metrics;
    if mismatched {
        m.baseline_mismatch(node);
    }
    if result.condition == Condition::Errored {
        m.node_status_error(&error_kind(&result.error_message, mismatched), node);
    }
    let ann = cm.annotations();
    let seconds = ann
        .get(names::SCAN_SECONDS_ANNOTATION)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0);
    let files = ann
        .get(names::FILES_SCANNED_ANNOTATION)
        .and_then(|v| v.parse::<i64>().ok());
    m.scan(owner, node, seconds, files);
}

/// The `error` label of an Errored result: short and bounded (the message itself holds paths,
/// digests and times).
fn error_kind(message: &str, mismatched: bool) -> String {
    // A database the daemon refused is also one whose reported digest the operator finds
    // mismatched: `mismatched` covers both.
    if mismatched {
        return "BaselineMismatch".into();
    }
    // The daemon's "AIDE error: <code> <meaning>: ..." (the exit code AIDE would have returned).
    message
        .strip_prefix("AIDE error: ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|code| code.parse::<u8>().ok())
        .map_or_else(|| "DaemonError".into(), |code| format!("AideExit{code}"))
}

/// The anchored baseline after this result, and an error when the database the node used is
/// not the anchored one. The anchor is set by the first report (trust on first use) and moved
/// only by an initialisation that completed a re-init request (annotation, config change,
/// MachineConfig update); a database rewritten or re-created on the node by anything else
/// (including the daemon re-initialising a deleted database on its own) does not match it.
fn check_baseline(
    cm: &ConfigMap,
    prev: Option<&FileIntegrityNodeStatusFields>,
    reinit_id: Option<i64>,
    probe: &Time,
) -> (Option<NodeBaseline>, Option<String>) {
    let anchored = prev.and_then(|p| p.baseline.clone());
    let ann = cm.annotations();
    let Some(sha256) = ann.get(names::DB_SHA256_ANNOTATION) else {
        return (anchored, None);
    };
    let number = |key: &str| ann.get(key).and_then(|v| v.parse::<i64>().ok());
    let requested_init = ann.contains_key(names::DB_INITIALIZED_ANNOTATION)
        && reinit_id.unwrap_or(0) > prev.and_then(|p| p.reinit_id).unwrap_or(0);
    match anchored {
        Some(a) if &a.sha256 == sha256 => (Some(a), None),
        Some(a) if !requested_init => {
            let node = prev.map(|p| p.node_name.as_str()).unwrap_or_default();
            let message = a.mismatch(node, sha256);
            (Some(a), Some(message))
        }
        _ => (
            Some(NodeBaseline {
                sha256: sha256.clone(),
                size: number(names::DB_SIZE_ANNOTATION).unwrap_or(0),
                entries: number(names::DB_ENTRIES_ANNOTATION),
                recorded_at: probe.clone(),
            }),
            None,
        ),
    }
}

/// A condition change, or a failure with different counts (upstream's
/// `conditionIsNewFailureOrTransition`, without its metrics part).
fn is_news(prev: Option<&FileIntegrityScanResult>, new: &FileIntegrityScanResult) -> bool {
    let Some(p) = prev else { return true };
    p.condition != new.condition
        || (new.condition == Condition::Failed
            && (p.files_added, p.files_changed, p.files_removed)
                != (new.files_added, new.files_changed, new.files_removed))
}

/// Copy a failure report to `<name>-failed`: the log label dropped (so it is not processed
/// again), `result-log` added, no owner reference.
async fn keep_failure(cm: &ConfigMap, ctx: &Context) -> Result<String, Error> {
    let name = format!("{}{}", cm.name_any(), names::FAILED_RESULT_CONFIGMAP_SUFFIX);
    let mut labels = cm.labels().clone();
    labels.remove(names::LOG_LABEL);
    labels.insert(names::RESULT_LOG_LABEL.into(), String::new());
    let kept = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ctx.namespace.clone()),
            labels: Some(labels),
            annotations: Some(cm.annotations().clone()),
            ..ObjectMeta::default()
        },
        data: cm.data.clone(),
        ..ConfigMap::default()
    };
    ctx.apply(&kept)
        .await
        .ctx(|| format!("writing failure report {}/{name}", ctx.namespace))?;
    Ok(name)
}
