//! Scenarios of upstream's e2e suite that upstream's users rely on (issue 13, section 2):
//! initialDelay, a user config reverted to the default, the config ConfigMap's labels restored,
//! tolerations of tainted nodes, priorityClassName on the pods, a node added to the cluster (and
//! then relabelled out of it), and the re-init trigger file of upstream's older versions left on
//! a node.

use std::collections::BTreeSet;

use crate::cluster::{secs, Daemon, Operator, TestNs, NODE_SELECTOR_LABEL};
use crate::config::{user_config_map, USER_CONFIG};
use crate::support::{
    active_scenario, assert_backups, backups, condition, ds_name, start_scenario, Scenario, FI,
    INTERVAL,
};
use fio_api::{names, FileIntegrityNodeCondition, FileIntegrityStatusPhase as Phase};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn ds_pods_by_node(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect()
}

async fn ds_pods(t: &TestNs) -> Vec<Pod> {
    t.api::<Pod>()
        .list(&ListParams::default().labels(&format!("{}={}", names::APP_LABEL, ds_name())))
        .await
        .expect("list the daemon pods")
        .items
}

/// Waits until every node of the scenario has `n` database backups.
async fn wait_backups(s: &Scenario, what: &str, n: usize) {
    for root in s.roots.values() {
        s.t.wait(what, secs(90), async || {
            let got = backups(root).0.len();
            (got == n).then_some(()).ok_or(format!("{got} backups"))
        })
        .await;
    }
}

/// Phase Pending and no DaemonSet until initialDelay has passed; then the scans start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_delay_holds_the_scans_back() {
    const DELAY: i64 = 25;
    let t = TestNs::new("delay", 1).await;
    let _op = Operator::start(&t);
    let mut fi = t.file_integrity(FI);
    fi.spec.config.initial_delay = DELAY;
    let created = t.create_fi(&fi).await;
    t.wait_phase(FI, Phase::Pending, secs(30)).await;
    let dss = t.api::<DaemonSet>();
    t.holds_for(
        "no DaemonSet during the initial delay",
        std::time::Duration::from_secs(15),
        async || match dss.get_opt(&ds_name()).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err("the DaemonSet exists".into()),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;
    let (ds, _) = t.wait_daemonset_rolled_out(&ds_name(), secs(60)).await;
    let at = |ts: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        ts.as_ref().expect("creationTimestamp").0.as_second()
    };
    let waited = at(&ds.metadata.creation_timestamp) - at(&created.metadata.creation_timestamp);
    assert!(
        waited >= DELAY - 1,
        "the DaemonSet came {waited} s after the FileIntegrity, initialDelay is {DELAY} s"
    );
    let node = t.nodes[0].clone();
    let _d = Daemon::start(&t, FI, &node, &t.node_root(&node), INTERVAL).await;
    t.wait_phase(FI, Phase::Active, secs(90)).await;
}

/// A user config, then removed again: the default config comes back and each node is
/// re-initialised once for each change. The config ConfigMap's labels, removed by someone, are
/// put back (upstream bug 2049206).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_revert_and_config_labels_restored() {
    let s = active_scenario("revert", 2, |_| {}).await;
    let t = &s.t;
    let cms = t.api::<ConfigMap>();
    let default = t.get_configmap(FI).await.and_then(|c| c.data);

    // -- labels removed by hand: restored ----------------------------------------------------
    cms.patch(
        FI,
        &PatchParams::default(),
        &Patch::Json::<()>(
            serde_json::from_value(json!([{"op": "remove", "path": "/metadata/labels"}]))
                .expect("JSON patch"),
        ),
    )
    .await
    .expect("remove the config ConfigMap's labels");
    t.wait(
        "the config ConfigMap's labels restored",
        secs(30),
        async || {
            let cm = cms.get(FI).await.map_err(|e| e.to_string())?;
            let labels = cm.metadata.labels.unwrap_or_default();
            (labels.contains_key(names::AIDE_CONFIG_LABEL)
                && labels.get(names::OWNER_LABEL).map(String::as_str) == Some(FI))
            .then_some(())
            .ok_or(format!("labels {labels:?}"))
        },
    )
    .await;

    // -- a user config: every node re-initialised once -----------------------------------------
    cms.create(
        &PostParams::default(),
        &user_config_map("userconf", USER_CONFIG),
    )
    .await
    .expect("create the user config");
    t.merge_patch_fi(
        FI,
        json!({"spec": {"config": {"name": "userconf", "namespace": t.ns, "key": "aide.conf"}}}),
    )
    .await;
    wait_backups(&s, "a re-init for the user config", 1).await;
    s.wait_all_succeeded_after("the user config", None, secs(90))
        .await;

    // -- reverted (config name and namespace removed): the default, one more re-init ----------
    t.merge_patch_fi(
        FI,
        json!({"spec": {"config": {"name": null, "namespace": null, "key": null}}}),
    )
    .await;
    t.wait("the default config back", secs(30), async || {
        let data = t.get_configmap(FI).await.and_then(|c| c.data);
        (data == default)
            .then_some(())
            .ok_or("still the user config".to_owned())
    })
    .await;
    wait_backups(&s, "a re-init for the default config", 2).await;
    s.wait_all_succeeded_after("the revert", None, secs(90))
        .await;
    s.backups_stay("one re-init per change", secs(2 * INTERVAL), &t.nodes, 2)
        .await;
    for root in s.roots.values() {
        assert_backups(root, 2);
    }
    t.wait_phase(FI, Phase::Active, secs(30)).await;
}

/// A node with a taint the scan pods do not tolerate is not scanned; tolerating it in the
/// FileIntegrity schedules a daemon there, which builds a baseline and reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolerations_decide_whether_a_tainted_node_is_scanned() {
    let t = TestNs::new("taint", 2).await;
    let tainted = t.nodes[1].clone();
    t.taint_node(
        &tainted,
        json!([{"key": "fio-test/dedicated", "value": "infra", "effect": "NoSchedule"}]),
    )
    .await;
    let _op = Operator::start(&t);
    t.create_fi(&t.file_integrity(FI)).await;
    let scanned = t.nodes[0].clone();
    let _d0 = Daemon::start(&t, FI, &scanned, &t.node_root(&scanned), INTERVAL).await;
    t.wait_node_statuses(FI, "the untainted node Succeeded", secs(90), |s| {
        s.get(&scanned).is_some_and(|st| {
            st.spec.last_result.condition == FileIntegrityNodeCondition::Succeeded
        })
    })
    .await;
    t.holds_for("no daemon pod on the tainted node", secs(10), async || {
        let on = ds_pods_by_node(&ds_pods(&t).await);
        (!on.contains(&tainted))
            .then_some(())
            .ok_or(format!("pods on {on:?}"))
    })
    .await;
    let statuses = t.node_statuses(FI).await.expect("node statuses");
    assert!(
        !statuses.contains_key(&tainted),
        "the tainted node has a status: {statuses:?}"
    );

    t.merge_patch_fi(
        FI,
        json!({"spec": {"tolerations": [
            {"key": "fio-test/dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}
        ]}}),
    )
    .await;
    let root = t.node_root(&tainted);
    let _d1 = Daemon::start(&t, FI, &tainted, &root, INTERVAL).await;
    t.wait_node_statuses(FI, "the tolerated node Succeeded", secs(90), |s| {
        s.get(&tainted).is_some_and(|st| {
            st.spec.last_result.condition == FileIntegrityNodeCondition::Succeeded
        })
    })
    .await;
    assert!(
        root.join("etc/kubernetes/aide.db.gz").exists(),
        "no baseline on the tolerated node"
    );
}

/// spec.priorityClassName reaches the DaemonSet's pods, and the API server gives them its
/// priority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_class_name_is_set_and_honoured_on_the_pods() {
    let t = TestNs::new("prio", 1).await;
    let class = format!("{}-scan", t.ns);
    let pcs: Api<PriorityClass> = Api::all(t.client.clone());
    pcs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": class}, "value": 424242
        }))
        .expect("PriorityClass"),
    )
    .await
    .expect("create the PriorityClass");
    let mut fi = t.file_integrity(FI);
    fi.spec.priority_class_name = class.clone();
    let s = start_scenario(t, fi).await;
    let t = &s.t;
    let pods = ds_pods(t).await;
    assert!(!pods.is_empty(), "no daemon pod");
    for p in &pods {
        let spec = p.spec.as_ref().expect("pod spec");
        assert_eq!(spec.priority_class_name.as_deref(), Some(class.as_str()));
        assert_eq!(spec.priority, Some(424242), "the pod's priority");
    }
    let _ = pcs.delete(&class, &Default::default()).await;
}

/// A node added to the cluster gets a daemon, a baseline and a node status; the phase is
/// Active again with every node Succeeded (upstream's TestFileIntegrityNodeScaling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_gets_a_daemon_a_baseline_and_a_status() {
    let mut s = active_scenario("scale", 1, |_| {}).await;
    let node = s.t.add_node().await;
    let root = s.t.node_root(&node);
    let d = Daemon::start(&s.t, FI, &node, &root, INTERVAL).await;
    s.roots.insert(node.clone(), root.clone());
    s.daemons.insert(node.clone(), d);
    s.wait_all_succeeded_after("the scale-up", None, secs(90))
        .await;
    assert!(
        root.join("etc/kubernetes/aide.db.gz").exists(),
        "no baseline"
    );
    s.t.wait_phase(FI, Phase::Active, secs(60)).await;
    let (_, pods) = s.t.wait_daemonset_rolled_out(&ds_name(), secs(30)).await;
    assert!(pods.contains_key(&node), "no daemon pod on {node}");

    // Issue 22: relabelled out of the selection, the node is not scanned any more (its pod
    // goes, and its daemon with it): its status says so, never a stale Succeeded.
    Api::<Node>::all(s.t.client.clone())
        .patch(
            &node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {NODE_SELECTOR_LABEL: null}}})),
        )
        .await
        .expect("relabel the node");
    if let Some(mut d) = s.daemons.remove(&node) {
        d.stop();
    }
    let statuses =
        s.t.wait_node_statuses(FI, &format!("{node} no longer selected"), secs(60), |st| {
            st.get(&node).is_some_and(|x| {
                condition(x) == FileIntegrityNodeCondition::Errored
                    && x.spec
                        .last_result
                        .error_message
                        .starts_with("no longer selected")
            })
        })
        .await;
    assert!(
        statuses[&node]
            .spec
            .last_result
            .error_message
            .contains("was Succeeded"),
        "{}",
        statuses[&node].spec.last_result.error_message
    );
    // It does not count against the phase.
    s.t.wait_phase(FI, Phase::Active, secs(30)).await;
    // Without the test's label the harness would not find the node to delete it.
    Api::<Node>::all(s.t.client.clone())
        .delete(&node, &Default::default())
        .await
        .expect("delete the relabelled node");
}

/// `/etc/kubernetes/aide.reinit`, the re-init trigger of upstream's versions before 0.1.22, left
/// on a node: the daemon removes it and re-initialises nothing. Placed on a running node, it
/// goes with the next re-init (upstream's e2e `TestFileIntegrityLegacyReinitCleanup`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_reinit_trigger_file_is_removed_and_reinitialises_nothing() {
    let t = TestNs::new("legacy", 1).await;
    let root = t.node_root(&t.nodes[0]);
    let trigger = root.join("etc/kubernetes/aide.reinit");
    std::fs::create_dir_all(trigger.parent().expect("parent")).expect("create etc/kubernetes");
    std::fs::write(&trigger, "").expect("leave the legacy trigger");
    let fi = t.file_integrity(FI);
    let s = start_scenario(t, fi).await;
    assert!(!trigger.exists(), "{} is still there", trigger.display());
    s.backups_stay("no re-init", secs(INTERVAL + 5), &s.t.nodes, 0)
        .await;
    let log = s.daemons.values().next().expect("a daemon").log();
    assert!(
        log.contains("aide.reinit"),
        "the daemon does not say it removed the trigger:\n{log}"
    );

    std::fs::write(&trigger, "").expect("the legacy trigger on a running node");
    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, "").await;
    s.wait_reinit_confirmed(&s.t.nodes, at, secs(90)).await;
    assert!(
        !trigger.exists(),
        "{} outlived a re-init",
        trigger.display()
    );
}

/// OCPBUGS-36483: an OpenShift node that joined recently creates
/// `/etc/kubernetes/static-pod-resources` during its first boot, which changes the link count
/// of `/etc/kubernetes`; a baseline taken before it fails the next scan. The daemon of an
/// OpenShift node (one the machine-config daemon manages) waits for it before the first
/// baseline, saying so in its log; once it appears the node is baselined and stays Succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booting_openshift_node_is_baselined_once_static_pod_resources_exist() {
    let t = TestNs::new("booting", 1).await;
    let node = t.nodes[0].clone();
    let root = t.node_root(&node);
    std::fs::create_dir_all(root.join("etc/machine-config-daemon")).expect("an MCO node");
    let _op = Operator::start(&t);
    t.create_fi(&t.file_integrity(FI)).await;
    t.wait_daemonset_rolled_out(&ds_name(), secs(60)).await;
    let daemon = Daemon::start(&t, FI, &node, &root, INTERVAL).await;
    t.wait("the daemon says it waits", secs(30), async || {
        daemon
            .log()
            .contains("for /etc/kubernetes/static-pod-resources before taking the first baseline")
            .then_some(())
            .ok_or_else(|| "not yet".to_owned())
    })
    .await;
    let db = root.join("etc/kubernetes/aide.db.gz");
    let statuses = t.api::<fio_api::FileIntegrityNodeStatus>();
    let status = crate::support::node_status_name(&node);
    t.holds_for(
        "no baseline and no result while the node boots",
        std::time::Duration::from_secs(INTERVAL + 2),
        async || {
            let st = statuses.get_opt(&status).await.map_err(|e| e.to_string())?;
            match (db.exists(), st) {
                (false, None) => Ok(()),
                (exists, st) => Err(format!("database {exists}, status {st:?}")),
            }
        },
    )
    .await;
    std::fs::create_dir_all(root.join("etc/kubernetes/static-pod-resources/kube-apiserver-pod-1"))
        .expect("the node finishes booting");
    let first = t
        .wait("the first result", secs(60), async || {
            let st = statuses.get_opt(&status).await.map_err(|e| e.to_string())?;
            st.ok_or_else(|| "none yet".to_owned())
        })
        .await;
    assert_eq!(condition(&first), FileIntegrityNodeCondition::Succeeded);
    let later = t
        .wait("a second scan", secs(INTERVAL * 3), async || {
            let st = statuses.get(&status).await.map_err(|e| e.to_string())?;
            (st.spec.last_result.last_probe_time != first.spec.last_result.last_probe_time)
                .then_some(st)
                .ok_or_else(|| "no newer result".to_owned())
        })
        .await;
    assert_eq!(
        condition(&later),
        FileIntegrityNodeCondition::Succeeded,
        "{:?}",
        later.spec.last_result
    );
    assert!(daemon.log().contains("static-pod-resources is there"));
}

/// Upstream's CRD accepts a FileIntegrity without `spec` (`oc create` of a bare object). Ours
/// gives it the default spec, with the spec's own defaults inside, on every read of the stored
/// object: such an object does not block the CRD upgrade (OLM validates the stored objects
/// against the new schema first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fileintegrity_without_spec_reads_with_the_default_spec() {
    let t = TestNs::new("nospec", 0).await;
    let gvk =
        kube::core::GroupVersionKind::gvk(names::GROUP, names::VERSION, names::FILE_INTEGRITY_KIND);
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, names::FILE_INTEGRITY_PLURAL);
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(t.client.clone(), &t.ns, &ar);
    let bare: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": names::API_VERSION, "kind": names::FILE_INTEGRITY_KIND,
        "metadata": {"name": "bare"}
    }))
    .expect("a bare FileIntegrity");
    api.create(&PostParams::default(), &bare)
        .await
        .expect("a FileIntegrity without spec is accepted");
    let fi = t.get_fi("bare").await;
    assert_eq!(fi.spec.config.grace_period, names::DEFAULT_GRACE_PERIOD);
    assert_eq!(fi.spec.config.max_backups, 5);
    assert!(
        fi.spec.config.user_config_map().is_none(),
        "the default configuration"
    );
    assert_eq!(fi.spec.tolerations.len(), 2, "{:?}", fi.spec.tolerations);
}
