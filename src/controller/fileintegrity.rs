//! Reconcile one FileIntegrity: its AIDE configuration, re-init requests, DaemonSet, stale node
//! statuses and phase. Every write is skipped when the object already says the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::{aideconf, daemonset, Context, Error, KubeContext, MANAGER};
use crate::api::reinit::parse_node_list;
use crate::api::{
    names, FileIntegrity, FileIntegrityNodeCondition, FileIntegrityNodeStatus,
    FileIntegrityStatusPhase as Phase, ReinitRequests,
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

/// Nodes by name with their labels.
type Nodes = BTreeMap<String, BTreeMap<String, String>>;

fn selected(fi: &FileIntegrity, nodes: &Nodes) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|(_, labels)| {
            fi.spec
                .node_selector
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
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
    let nodes: Nodes = Api::<Node>::all(ctx.client.clone())
        .list_metadata(&ListParams::default())
        .await
        .ctx(|| "listing nodes".into())?
        .items
        .into_iter()
        .map(|n| (n.name_any(), n.metadata.labels.unwrap_or_default()))
        .collect();
    let selected = selected(&fi, &nodes);
    let statuses = ctx
        .api::<FileIntegrityNodeStatus>()
        .list(&ListParams::default().labels(&format!("{}={name}", names::OWNER_LABEL)))
        .await
        .ctx(|| format!("listing node statuses of {name}"))?
        .items;
    let requests = update_requests(&fi, &ctx, &config, &selected, &nodes, &statuses).await?;

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
    let hash = crate::hash::sha256_hex(&serde_json::to_vec(&desired).unwrap_or_default());
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
    let (phase, message) = phase(ds.as_ref(), config_error, &selected, &statuses, &requests);
    set_phase(&fi, &ctx, phase, message).await?;
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
/// that also removes the user's annotations. Returns the requests in force.
async fn update_requests(
    fi: &FileIntegrity,
    ctx: &Context,
    config: &str,
    selected: &BTreeSet<String>,
    nodes: &Nodes,
    statuses: &[FileIntegrityNodeStatus],
) -> Result<ReinitRequests, Error> {
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
    if existing.is_none() {
        // A new FileIntegrity: nodes without a database initialise anyway.
        requests.config = config_hash;
    } else if requests.config != config_hash {
        requests.request(selected.iter().map(String::as_str));
        requests.config = config_hash;
        tracing::info!("configuration of {name} changed: re-initialising every node");
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
    }
    requests.nodes.retain(|n, _| nodes.contains_key(n));

    let user_annotations = annotations.contains_key(names::REINIT_ANNOTATION)
        || annotations.contains_key(names::REINIT_ON_FAILED_ANNOTATION);
    if existing.as_ref() != Some(&requests) || user_annotations {
        // resourceVersion makes this a compare-and-swap: if the user changed the annotations
        // since we read them, the write fails (409) and the reconcile runs again.
        let patch = json!({"metadata": {
            "resourceVersion": fi.resource_version(),
            "annotations": {
                names::REINIT_ANNOTATION: null,
                names::REINIT_ON_FAILED_ANNOTATION: null,
                names::REINIT_REQUESTS_ANNOTATION: requests.to_annotation(),
            }
        }});
        ctx.api::<FileIntegrity>()
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .ctx(|| format!("recording re-init requests on FileIntegrity {name}"))?;
    }
    Ok(requests)
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
            Some(format!(
                "{} of {desired} nodes have reported a first scan",
                current.len()
            )),
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
    use crate::api::{FileIntegrityNodeStatusFields, FileIntegrityScanResult};
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
}
