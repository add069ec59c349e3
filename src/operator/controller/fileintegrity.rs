//! Reconcile one FileIntegrity: its AIDE configuration, re-init requests, DaemonSet, stale node
//! statuses and phase. Every write is skipped when the object already says the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::{cache, daemonset, Context, Error, KubeContext, MANAGER};
use crate::metrics::ReinitBy;
use fio_api::aideconf;
use fio_api::reinit::parse_node_list;
use fio_api::{
    names, FileIntegrity, FileIntegrityNodeCondition, FileIntegrityNodeStatus,
    FileIntegrityStatusPhase as Phase, Holdoff, NodeUpdate, ReinitRequests,
};

/// How often a FileIntegrity is looked at without any event (missed events, user ConfigMaps in
/// other namespaces).
const RESYNC: Duration = Duration::from_secs(300);

/// The configuration the FileIntegrity asks for.
enum Wanted {
    /// Rendered text, to be validated.
    Text(String),
    /// Keep what is deployed (the user's ConfigMap or key is missing, as upstream).
    Keep,
}

async fn wanted_config(fi: &FileIntegrity, ctx: &Context) -> Result<Wanted, Error> {
    let Some((ns, name)) = fi.spec.config.user_config_map() else {
        return Ok(Wanted::Text(aideconf::DEFAULT_CONFIG.to_owned()));
    };
    let key = fi.spec.config.data_key();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = api
        .get_opt(name)
        .await
        .ctx(|| format!("reading the user configuration ConfigMap {ns}/{name}"))?;
    let Some(cm) = cm else {
        tracing::warn!("user-specified configMap {ns}/{name} does not exist");
        return Ok(Wanted::Keep);
    };
    match cm.data.as_ref().and_then(|d| d.get(key)) {
        Some(text) if !text.is_empty() => Ok(Wanted::Text(aideconf::convert_user_config(text))),
        _ => {
            tracing::warn!("user-specified configMap {ns}/{name} has no data in key {key}");
            Ok(Wanted::Keep)
        }
    }
}

/// What the reconcile needs of a node.
struct NodeInfo {
    labels: BTreeMap<String, String>,
    /// Where it is in a MachineConfig update (`None`: not managed by the machine-config daemon).
    update: Option<NodeUpdate>,
}

/// Nodes by name.
type Nodes = BTreeMap<String, NodeInfo>;

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

pub async fn reconcile(fi: Arc<FileIntegrity>, ctx: Arc<Context>) -> Result<Action, Error> {
    if fi.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = fi.name_any();
    let ns = ctx.namespace.as_str();

    // 1. Configuration: the rendered text in ConfigMap `<fi>`; an invalid one is not deployed.
    let cms = ctx.api::<ConfigMap>();
    let deployed = cms
        .get_opt(&name)
        .await
        .ctx(|| format!("reading ConfigMap {ns}/{name}"))?
        .and_then(|cm| cm.data)
        .and_then(|mut d| d.remove(names::DEFAULT_CONFIG_DATA_KEY));
    // What stays in use when the wanted config is missing or invalid: the deployed one, or the
    // default when nothing is deployed yet.
    let kept = || {
        deployed
            .clone()
            .unwrap_or_else(|| aideconf::DEFAULT_CONFIG.to_owned())
    };
    let mut config_error = None;
    let config = match wanted_config(&fi, &ctx).await? {
        Wanted::Text(text) => match aideconf::validate(&text) {
            Ok(()) => text,
            Err(e) => {
                let (cns, cname) = fi.spec.config.user_config_map().unwrap_or((ns, &name));
                config_error = Some(format!(
                    "invalid AIDE configuration in ConfigMap {cns}/{cname} key {}: {e}",
                    fi.spec.config.data_key()
                ));
                kept()
            }
        },
        Wanted::Keep => kept(),
    };
    if deployed.as_deref() != Some(config.as_str()) {
        apply_config_map(&fi, &ctx, &config).await?;
    }

    // 2. Re-init requests, after the config (a daemon that sees a request finds its config).
    // From the caches (a full list per reconcile would cost O(nodes) per result on a large
    // cluster); a change either of them misses yet triggers another reconcile.
    let nodes: Nodes = ctx
        .nodes
        .state()
        .iter()
        .map(|n| {
            let info = NodeInfo {
                labels: n.labels().clone(),
                update: NodeUpdate::of(n.annotations()),
            };
            (n.name_any(), info)
        })
        .collect();
    let selected = selected(&fi, &nodes);
    let statuses: Vec<FileIntegrityNodeStatus> = ctx
        .statuses
        .state()
        .iter()
        .filter(|st| cache::owner(st) == name)
        .map(|st| FileIntegrityNodeStatus::clone(st))
        .collect();
    let (requests, holdoff) =
        update_requests(&fi, &ctx, &config, &selected, &nodes, &statuses).await?;

    // 3. The DaemonSet (after the initial delay).
    let dss = ctx.api::<DaemonSet>();
    let ds_name = names::daemonset_name(&name);
    let mut ds = dss
        .get_opt(&ds_name)
        .await
        .ctx(|| format!("reading DaemonSet {ns}/{ds_name}"))?;
    if ds.is_none() {
        if let Some(wait) = initial_delay_left(&fi) {
            tracing::info!(
                "Re-queuing request for {} seconds for initial delay",
                wait.as_secs()
            );
            set_phase(
                &fi,
                &ctx,
                Phase::Pending,
                Some("waiting for initialDelay".into()),
            )
            .await?;
            return Ok(Action::requeue(wait));
        }
    }
    let priority_class = priority_class(&fi, &ctx).await?;
    let mut desired = daemonset::build(&fi, ns, &ctx.image, priority_class);
    let hash = fio_core::hash::sha256_hex(&serde_json::to_vec(&desired).unwrap_or_default());
    let current_hash = ds.as_ref().and_then(|d| {
        d.annotations()
            .get(daemonset::SPEC_HASH_ANNOTATION)
            .cloned()
    });
    if current_hash.as_deref() != Some(hash.as_str()) {
        desired
            .annotations_mut()
            .insert(daemonset::SPEC_HASH_ANNOTATION.into(), hash);
        let applied = ctx
            .apply(&desired)
            .await
            .ctx(|| format!("applying DaemonSet {ns}/{ds_name}"))?;
        tracing::info!("DaemonSet {ds_name} applied");
        ctx.metrics.daemonset_update("update");
        ds = Some(applied);
    }

    // 4. Node statuses of nodes that no longer exist (upstream OCPBUGS-15090).
    let nss = ctx.api::<FileIntegrityNodeStatus>();
    for st in &statuses {
        if !nodes.contains_key(&st.spec.node_name) {
            let st_name = st.name_any();
            nss.delete(&st_name, &DeleteParams::default())
                .await
                .map(drop)
                .or_else(not_found_ok)
                .ctx(|| format!("deleting node status {st_name} of a deleted node"))?;
            tracing::info!("deleted node status {st_name}: its node is gone");
        }
    }

    // 5. Phase.
    let error_kind = if config_error.is_some() {
        "InvalidConfig"
    } else {
        "NodeErrored"
    };
    let (phase, mut message) = phase(ds.as_ref(), config_error, &selected, &statuses, &requests);
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
    let before = fi.status.as_ref().and_then(|s| s.phase);
    set_phase(&fi, &ctx, phase, message).await?;
    if before != Some(phase) {
        ctx.metrics.phase(phase.as_str());
        if phase == Phase::Error {
            ctx.metrics.error(error_kind);
        }
    }
    Ok(Action::requeue(RESYNC))
}

fn not_found_ok(e: kube::Error) -> Result<(), kube::Error> {
    match e {
        kube::Error::Api(s) if s.code == 404 => Ok(()),
        e => Err(e),
    }
}

async fn apply_config_map(fi: &FileIntegrity, ctx: &Context, config: &str) -> Result<(), Error> {
    let name = fi.name_any();
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ctx.namespace.clone()),
            labels: Some(BTreeMap::from([
                (names::AIDE_CONFIG_LABEL.into(), String::new()),
                (names::OWNER_LABEL.into(), name.clone()),
            ])),
            owner_references: fi.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            names::DEFAULT_CONFIG_DATA_KEY.into(),
            config.to_owned(),
        )])),
        ..ConfigMap::default()
    };
    ctx.apply(&cm).await.ctx(|| {
        format!(
            "applying the AIDE configuration ConfigMap {}/{name}",
            ctx.namespace
        )
    })?;
    tracing::info!("AIDE configuration {name} updated");
    Ok(())
}

/// Turn `re-init`, `re-init-on-failed` and a config change into requests, in one metadata write
/// that also removes the user's annotations and records which nodes are paused for a
/// MachineConfig update. Returns the requests and the pause in force.
async fn update_requests(
    fi: &FileIntegrity,
    ctx: &Context,
    config: &str,
    selected: &BTreeSet<String>,
    nodes: &Nodes,
    statuses: &[FileIntegrityNodeStatus],
) -> Result<(ReinitRequests, Holdoff), Error> {
    let name = fi.name_any();
    let config_hash = aideconf::config_hash(config);
    let existing = match ReinitRequests::of(fi) {
        Ok(r) => r,
        Err(e) => {
            ctx.event(fi, true, "ReinitRequests", format!("{e}; starting afresh"))
                .await;
            None
        }
    };
    let mut requests = existing.clone().unwrap_or_default();
    let annotations = fi.annotations();
    // Counted once the write has succeeded (a conflict retries the whole reconcile).
    let mut triggers = Vec::new();
    if existing.is_none() {
        // A new FileIntegrity: nodes without a database initialise anyway.
        requests.config = config_hash;
    } else if requests.config != config_hash {
        requests.request(selected.iter().map(String::as_str));
        requests.config = config_hash;
        tracing::info!("configuration of {name} changed: re-initialising every node");
        triggers.push(ReinitBy::Config);
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
        triggers.push(ReinitBy::Demand);
    }
    if let Some(value) = annotations.get(names::REINIT_ANNOTATION) {
        let wanted = match parse_node_list(value) {
            None => selected.clone(),
            Some(list) => {
                let (ok, unknown): (BTreeSet<String>, BTreeSet<String>) =
                    list.into_iter().partition(|n| selected.contains(n));
                if !unknown.is_empty() {
                    let unknown: Vec<_> = unknown.into_iter().collect();
                    ctx.event(
                        fi,
                        true,
                        "ReinitIgnored",
                        format!(
                            "re-init of nodes not selected by {name} ignored: {}",
                            unknown.join(",")
                        ),
                    )
                    .await;
                }
                ok
            }
        };
        tracing::info!("re-init on {name}: {wanted:?}");
        requests.request(wanted.iter().map(String::as_str));
        triggers.push(ReinitBy::Demand);
    }
    let holdoff = Holdoff::of(fi);
    let (new_holdoff, paused, resumed) = follow_node_updates(&holdoff, selected, nodes);
    if !resumed.is_empty() {
        tracing::info!("{name}: MachineConfig update over on {resumed:?}: re-initialising");
        requests.request(resumed.iter().map(String::as_str));
    }
    if !paused.is_empty() {
        tracing::info!("{name}: MachineConfig update on {paused:?}: scans paused");
    }
    requests.nodes.retain(|n, _| nodes.contains_key(n));

    let user_annotations = annotations.contains_key(names::REINIT_ANNOTATION)
        || annotations.contains_key(names::REINIT_ON_FAILED_ANNOTATION);
    let holdoff_changed = new_holdoff != holdoff;
    if existing.as_ref() != Some(&requests) || user_annotations || holdoff_changed {
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
        ctx.api::<FileIntegrity>()
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .ctx(|| format!("recording re-init requests on FileIntegrity {name}"))?;
        for by in triggers {
            ctx.metrics.reinit(by, "");
        }
        for n in &paused {
            ctx.metrics.pause(n);
        }
        for n in &resumed {
            ctx.metrics.unpause(n);
            ctx.metrics.reinit(ReinitBy::Node, n);
        }
    }
    Ok((requests, new_holdoff))
}

/// The holdoff after looking at the selected nodes' MachineConfig updates, and the nodes
/// paused and resumed by it. A node is paused when its update starts and resumed (to be
/// re-initialised) only when it was paused and its update is over: however many Node events
/// arrive, one re-init per update. Paused nodes that are no longer selected are released
/// without a re-init. A hand-set `""` (everything paused) is left alone.
fn follow_node_updates(
    holdoff: &Holdoff,
    selected: &BTreeSet<String>,
    nodes: &Nodes,
) -> (Holdoff, Vec<String>, Vec<String>) {
    let mut held = match holdoff {
        Holdoff::All => return (Holdoff::All, Vec::new(), Vec::new()),
        Holdoff::None => BTreeSet::new(),
        Holdoff::Nodes(n) => n.clone(),
    };
    let (mut paused, mut resumed) = (Vec::new(), Vec::new());
    for n in selected {
        match nodes.get(n).and_then(|i| i.update) {
            Some(NodeUpdate::Updating) if !held.contains(n) => {
                held.insert(n.clone());
                paused.push(n.clone());
            }
            Some(NodeUpdate::Finished) if held.remove(n) => resumed.push(n.clone()),
            _ => {}
        }
    }
    held.retain(|n| selected.contains(n));
    let after = if held.is_empty() {
        Holdoff::None
    } else {
        Holdoff::Nodes(held)
    };
    (after, paused, resumed)
}

fn initial_delay_left(fi: &FileIntegrity) -> Option<Duration> {
    let delay = fi.spec.config.initial_delay;
    if delay <= 0 {
        return None;
    }
    let created = fi.metadata.creation_timestamp.as_ref()?.0;
    let elapsed = Timestamp::now().duration_since(created).as_secs();
    // The remaining delay (upstream re-queued for the whole delay again).
    (elapsed < delay).then(|| Duration::from_secs((delay - elapsed) as u64))
}

/// The priority class for the pods, if the FileIntegrity names one that exists. A missing one
/// is reported and left out of the DaemonSet; the user's spec is not rewritten (upstream
/// cleared it).
async fn priority_class(fi: &FileIntegrity, ctx: &Context) -> Result<Option<String>, Error> {
    let pc = &fi.spec.priority_class_name;
    if pc.is_empty() {
        return Ok(None);
    }
    let found = Api::<PriorityClass>::all(ctx.client.clone())
        .get_opt(pc)
        .await
        .ctx(|| format!("reading PriorityClass {pc}"))?;
    if found.is_some() {
        return Ok(Some(pc.clone()));
    }
    ctx.event(
        fi,
        true,
        names::EVENT_REASON_PRIORITY_CLASS,
        format!("Error while getting priority class '{pc}', PriorityClass not found or invalid"),
    )
    .await;
    Ok(None)
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

async fn set_phase(
    fi: &FileIntegrity,
    ctx: &Context,
    phase: Phase,
    message: Option<String>,
) -> Result<(), Error> {
    let current = fi.status.as_ref();
    if current.and_then(|s| s.phase) == Some(phase)
        && current.and_then(|s| s.message.clone()) == message
    {
        return Ok(());
    }
    let name = fi.name_any();
    // Applied by this manager alone: leaving `message` out removes the one we set before.
    let mut status = json!({"phase": phase.as_str()});
    if let Some(m) = &message {
        status["message"] = json!(m);
    }
    let patch = json!({
        "apiVersion": names::API_VERSION,
        "kind": names::FILE_INTEGRITY_KIND,
        "status": status,
    });
    ctx.api::<FileIntegrity>()
        .patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .ctx(|| format!("writing the status of FileIntegrity {name}"))?;
    if current.and_then(|s| s.phase) != Some(phase) {
        tracing::info!("FileIntegrity {name}: phase {phase}");
        ctx.event(
            fi,
            phase == Phase::Error,
            names::EVENT_REASON_FILE_INTEGRITY_STATUS,
            phase.as_str().to_owned(),
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fio_api::{FileIntegrityNodeStatusFields, FileIntegrityScanResult};
    use k8s_openapi::api::apps::v1::DaemonSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ready_ds(desired: i32) -> DaemonSet {
        DaemonSet {
            status: Some(DaemonSetStatus {
                desired_number_scheduled: desired,
                number_available: Some(desired),
                updated_number_scheduled: Some(desired),
                ..DaemonSetStatus::default()
            }),
            ..DaemonSet::default()
        }
    }

    fn status(
        node: &str,
        condition: FileIntegrityNodeCondition,
        reinit: i64,
    ) -> FileIntegrityNodeStatus {
        let r = FileIntegrityScanResult {
            error_message: "AIDE error: 18 IO error".into(),
            ..FileIntegrityScanResult::new(Time(Timestamp::now()), condition)
        };
        FileIntegrityNodeStatus::new(
            &format!("fi-{node}"),
            FileIntegrityNodeStatusFields {
                node_name: node.into(),
                results: vec![r.clone()],
                last_result: r,
                reinit_id: Some(reinit),
                baseline: None,
            },
        )
    }

    #[test]
    fn phase_follows_config_daemonset_results_and_reinits() {
        use FileIntegrityNodeCondition::*;
        let nodes: BTreeSet<String> = ["n1", "n2"].map(String::from).into();
        let ok = vec![status("n1", Succeeded, 1), status("n2", Failed, 1)];
        let mut req = ReinitRequests::default();
        req.request(["n1", "n2"]);
        let ds = ready_ds(2);

        let p = |ds: Option<&DaemonSet>, err: Option<&str>, st: &[FileIntegrityNodeStatus], r| {
            phase(ds, err.map(String::from), &nodes, st, r)
        };
        assert_eq!(p(Some(&ds), None, &ok, &req), (Phase::Active, None));
        // The DaemonSet still counts the pod of a deleted third node: not waited for.
        assert_eq!(
            p(Some(&ready_ds(3)), None, &ok, &req),
            (Phase::Active, None)
        );
        assert_eq!(p(None, None, &ok, &req).0, Phase::Pending);
        let (ph, msg) = p(Some(&ds), Some("aide.conf:3: bad"), &ok, &req);
        assert_eq!(
            (ph, msg.as_deref()),
            (Phase::Error, Some("aide.conf:3: bad"))
        );
        let errored = vec![status("n1", Succeeded, 1), status("n2", Errored, 1)];
        let (ph, msg) = p(Some(&ds), None, &errored, &req);
        assert_eq!(ph, Phase::Error);
        assert!(msg.unwrap().starts_with("n2: AIDE error: 18"));
        // A status of a node no longer selected does not count.
        let stale = vec![
            status("n1", Succeeded, 1),
            status("n2", Succeeded, 1),
            status("gone", Errored, 0),
        ];
        assert_eq!(p(Some(&ds), None, &stale, &req).0, Phase::Active);

        let mut again = req.clone();
        again.request(["n2"]);
        let (ph, msg) = p(Some(&ds), None, &ok, &again);
        assert_eq!(
            (ph, msg.as_deref()),
            (Phase::Initializing, Some("re-initialising: n2"))
        );
        let (ph, msg) = p(Some(&ds), None, &ok[..1], &req);
        assert_eq!(ph, Phase::Initializing, "{msg:?}");
        assert_eq!(
            p(Some(&ready_ds(0)), None, &[], &ReinitRequests::default()).0,
            Phase::Initializing
        );
    }

    #[test]
    fn one_pause_and_one_reinit_per_machine_config_update() {
        let node = |u: Option<NodeUpdate>| NodeInfo {
            labels: BTreeMap::new(),
            update: u,
        };
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let selected = set(&["n1", "n2", "plain"]);
        let nodes = |n1, n2| -> Nodes {
            BTreeMap::from([
                ("n1".to_owned(), node(Some(n1))),
                ("n2".to_owned(), node(Some(n2))),
                ("plain".to_owned(), node(None)),
            ])
        };
        use NodeUpdate::{Finished, Other, Updating};
        // n1 starts updating: paused once, however often it is seen.
        let (h, paused, resumed) =
            follow_node_updates(&Holdoff::None, &selected, &nodes(Updating, Finished));
        assert_eq!((paused, resumed), (vec!["n1".to_owned()], vec![]));
        assert_eq!(h, Holdoff::Nodes(set(&["n1"])));
        let again = follow_node_updates(&h, &selected, &nodes(Updating, Finished));
        assert_eq!(again, (h.clone(), vec![], vec![]));
        // In between (Done, a newer config desired): still paused, nothing else.
        let between = follow_node_updates(&h, &selected, &nodes(Other, Finished));
        assert_eq!(between, (h.clone(), vec![], vec![]));
        // Over: resumed (to be re-initialised) once; n2 was never updated: never re-initialised.
        let (h2, paused, resumed) = follow_node_updates(&h, &selected, &nodes(Finished, Finished));
        assert_eq!((paused, resumed), (vec![], vec!["n1".to_owned()]));
        assert_eq!(h2, Holdoff::None);
        let again = follow_node_updates(&h2, &selected, &nodes(Finished, Finished));
        assert_eq!(again, (Holdoff::None, vec![], vec![]));
        // A paused node that is no longer selected is released without a re-init.
        let (h3, _, resumed) = follow_node_updates(&h, &set(&["n2"]), &nodes(Finished, Finished));
        assert_eq!((h3, resumed), (Holdoff::None, vec![]));
        // Everything paused by hand stays so.
        let all = follow_node_updates(&Holdoff::All, &selected, &nodes(Finished, Updating));
        assert_eq!(all, (Holdoff::All, vec![], vec![]));
    }
}
