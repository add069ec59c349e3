//! MachineConfig updates (issue 5, section 1): the machine-config daemon's Node annotations,
//! the holdoff annotation, the pause, and after a node's update its changes accepted per path
//! (issue 28; upstream re-initialised the node); with the MachineConfigPool API (issue 11,
//! point 4), only when the node's pool confirms the update, and a pause that lasts too long
//! reported. Every test here runs with the pool API
//! (installed once, cluster-wide) and a pool selecting the test's nodes.

use std::time::Duration;

use crate::cluster::{secs, TestNs, MAX_PAUSE};
use crate::support::{active_scenario, assert_backups, condition, Scenario, FI, INTERVAL};
use fio_api::{names, FileIntegrityNodeCondition, FileIntegrityStatusPhase as Phase};
use fio_operator::controller::fileintegrity::machine_config::{
    MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE,
};
use k8s_openapi::api::core::v1::{Event, Node};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// An active scenario whose nodes are in a pool targeting `rendered-1`, all up to date.
async fn pooled_scenario(label: &str, nodes: usize) -> Scenario {
    let s = active_scenario(label, nodes, |_| {}).await;
    s.t.set_machine_config_pool("rendered-1").await;
    for n in &s.t.nodes {
        set_mc_state(&s.t, n, "rendered-1", "rendered-1", "Done").await;
    }
    s
}

/// Events about the FileIntegrity with `reason` whose note mentions `node` and says `says`.
async fn wait_event(t: &TestNs, reason: &str, node: &str, says: &str) -> String {
    let events = t.api::<Event>();
    t.wait(
        &format!("Event {reason} about {node}"),
        secs(60),
        async || {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .filter_map(|e| e.message.clone())
                .find(|n| n.contains(node) && n.contains(says))
                .ok_or_else(|| format!("{} events, none {reason} about {node}", list.items.len()))
        },
    )
    .await
}

// ---- MachineConfig updates (issue 5, section 1) -------------------------------------------------

/// Sets the machine-config daemon's annotations on `node` as it does during an update.
async fn set_mc_state(t: &TestNs, node: &str, current: &str, desired: &str, state: &str) {
    Api::<Node>::all(t.client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                MC_CURRENT_CONFIG: current, MC_DESIRED_CONFIG: desired, MC_STATE: state,
            }}})),
        )
        .await
        .unwrap_or_else(|e| panic!("annotating node {node}: {e}"));
}

/// The FileIntegrity's holdoff annotation (`None`: absent).
async fn holdoff(t: &TestNs) -> Option<String> {
    t.get_fi(FI)
        .await
        .metadata
        .annotations
        .and_then(|a| a.get(names::HOLDOFF_ANNOTATION).cloned())
}

async fn wait_holdoff(t: &TestNs, want: Option<&str>) {
    t.wait(
        &format!("holdoff annotation {want:?}"),
        secs(30),
        async || {
            let h = holdoff(t).await;
            if h.as_deref() == want {
                Ok(())
            } else {
                Err(format!("{h:?}"))
            }
        },
    )
    .await;
}

/// Node-1 is updated while node-2 is not; both see a file change. Node-1 is paused (no scan
/// during the update), its change accepted per path once after it (no re-init, one backup: the
/// delta's), and Succeeded; node-2 goes Failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_config_update_pauses_the_node_and_accepts_its_change_once() {
    let s = pooled_scenario("mcupdate", 2).await;
    let t = &s.t;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    // Both nodes managed by the machine-config daemon and up to date: nothing happens.
    t.holds_for(
        "no pause for up-to-date nodes",
        secs(3),
        async || match holdoff(t).await {
            None => Ok(()),
            h => Err(format!("holdoff {h:?}")),
        },
    )
    .await;

    // The machine-config controller rolls rendered-2 out to the pool, node by node.
    t.set_machine_config_pool("rendered-2").await;
    set_mc_state(t, &n1, "rendered-1", "rendered-2", "Working").await;
    wait_holdoff(t, Some(n1.as_str())).await;
    let paused_at = Timestamp::now();
    // The update's own change on node-1, and an unexpected change on node-2.
    s.change_resolv_conf(&n1);
    s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;
    // Another full interval: node-1 still reports nothing new.
    tokio::time::sleep(secs(INTERVAL + 2)).await;
    let st = &t.node_statuses(FI).await.expect("node statuses")[&n1];
    assert_eq!(condition(st), FileIntegrityNodeCondition::Succeeded);
    let last = st.spec.last_result.last_probe_time.0;
    assert!(
        last <= paused_at + Duration::from_secs(2),
        "{n1} was scanned during its update: result at {last}, paused at {paused_at}"
    );
    assert!(
        s.daemons[&n1].log().contains("holding off scans on node"),
        "{}",
        s.daemons[&n1].log()
    );
    assert_eq!(
        s.fi().await.status.unwrap_or_default().phase,
        Some(Phase::Active)
    );

    let done_at = Timestamp::now();
    set_mc_state(t, &n1, "rendered-2", "rendered-2", "Done").await;
    let by = s
        .wait_update_accepted(&n1, "/etc/resolv.conf", done_at)
        .await;
    // (the daemons here run without realtime: no writer is named)
    assert_eq!(
        by,
        "node update rendered-1 -> rendered-2 (writer not named)"
    );
    wait_holdoff(t, None).await;
    assert_backups(s.root(&n1), 1);
    assert_backups(s.root(&n2), 0);
    let statuses = t.node_statuses(FI).await.expect("node statuses");
    assert_eq!(
        condition(&statuses[&n2]),
        FileIntegrityNodeCondition::Failed
    );
    // More Node events (kwok heartbeats, a repeated Done) move nothing again.
    set_mc_state(t, &n1, "rendered-2", "rendered-2", "Done").await;
    s.backups_stay(
        "one baseline move of node-1",
        secs(2 * INTERVAL),
        std::slice::from_ref(&n1),
        1,
    )
    .await;
    let text = s.op.metrics().await;
    for (name, labels) in [
        (
            "file_integrity_operator_pause_total",
            vec![("node", n1.as_str())],
        ),
        (
            "file_integrity_operator_unpause_total",
            vec![("node", n1.as_str())],
        ),
        (
            "file_integrity_operator_node_accepted_changes_total",
            vec![("by", "node update"), ("node", n1.as_str())],
        ),
    ] {
        assert_eq!(
            fio_operator::metrics::sample(&text, name, &labels),
            Some(1.0),
            "{name}{labels:?}\n{text}"
        );
    }
    t.delete_machine_config_pool().await;
}

/// A rolling update over three nodes, one at a time: node-1 with an operator crash between
/// Working and Done, node-2 ending Degraded (still at its old config), node-3 plainly. Each node
/// that reached the pool's config has its change accepted exactly once, only after its own
/// update, and only the node being updated is paused. The Degraded node is resumed with nothing
/// accepted (its pool does not confirm the update, upstream re-initialised it): its changed
/// file shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_machine_config_update_with_degraded_node_and_operator_restart() {
    let mut s = pooled_scenario("mcroll", 3).await;
    let nodes = s.t.nodes.clone();
    s.t.set_machine_config_pool("rendered-2").await;
    for (i, n) in nodes.iter().enumerate() {
        set_mc_state(&s.t, n, "rendered-1", "rendered-2", "Working").await;
        wait_holdoff(&s.t, Some(n.as_str())).await;
        s.change_resolv_conf(n);
        if i == 0 {
            // A crash mid-update: the pause survives, the change is accepted once.
            s.op.kill();
            tokio::time::sleep(secs(1)).await;
            s.op.start_again();
        }
        let end_at = Timestamp::now();
        if i == 1 {
            set_mc_state(&s.t, n, "rendered-1", "rendered-2", "Degraded").await;
            let note = wait_event(&s.t, names::EVENT_REASON_UPDATE_UNCONFIRMED, n, "").await;
            assert!(note.contains("rendered-1"), "{note}");
            wait_holdoff(&s.t, None).await;
            s.wait_failed(n, 1).await;
        } else {
            set_mc_state(&s.t, n, "rendered-2", "rendered-2", "Done").await;
            s.wait_update_accepted(n, "/etc/resolv.conf", end_at).await;
            wait_holdoff(&s.t, None).await;
        }
        for (j, other) in nodes.iter().enumerate() {
            assert_backups(s.root(other), usize::from(j <= i && j != 1));
        }
    }
    let updated = [nodes[0].clone(), nodes[2].clone()];
    s.t.wait_node_statuses(FI, "the updated nodes Succeeded", secs(60), |st| {
        updated.iter().all(|n| {
            st.get(n)
                .is_some_and(|x| condition(x) == FileIntegrityNodeCondition::Succeeded)
        })
    })
    .await;
    s.backups_stay(
        "one baseline move per updated node",
        secs(INTERVAL + 2),
        &updated,
        1,
    )
    .await;
    assert_backups(s.root(&nodes[1]), 0);
    s.t.delete_machine_config_pool().await;
}

/// Issue 11, point 4 and issue 22, attack 3: root on node-1 sets its own Node's machine-config
/// annotations, Working then Done, to have its tampered file system taken as the new baseline:
/// ending at a config its pool does not target, then ending at the one it does after claiming a
/// made-up starting config. Its pool rolls nothing out: both times scans resume without a
/// re-init (Warning Event naming why) and the change shows as Failed, the file listed. Node-2 is left at Working: its pause is reported once it outlasts the operator's
/// bound (Event, the paused-since metric the alert reads, the record in the status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_reinitialise_itself_and_a_long_pause_is_reported() {
    let s = pooled_scenario("mcself", 2).await;
    let t = &s.t;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    set_mc_state(t, &n2, "rendered-1", "rendered-2", "Working").await;
    set_mc_state(t, &n1, "rendered-1", "rendered-evil", "Working").await;
    wait_holdoff(t, Some(&format!("{n1},{n2}"))).await;
    let paused_at = Timestamp::now();
    s.change_resolv_conf(&n1);
    set_mc_state(t, &n1, "rendered-evil", "rendered-evil", "Done").await;
    let note = wait_event(t, names::EVENT_REASON_UPDATE_UNCONFIRMED, &n1, "").await;
    assert!(note.contains("targets rendered-1"), "{note}");
    wait_holdoff(t, Some(n2.as_str())).await;
    s.wait_failed(&n1, 1).await;
    assert_backups(s.root(&n1), 0);

    // Issue 22, attack 3, second form: node-1 enters Working claiming a made-up currentConfig
    // (recorded as where it came from) and ends Done at the pool's own target, rendered-1,
    // which the pool had rolled out long before: nothing was updated, nothing re-initialised.
    set_mc_state(t, &n1, "rendered-made-up", "rendered-1", "Working").await;
    wait_holdoff(t, Some(&format!("{n1},{n2}"))).await;
    let planted = s.root(&n1).join("etc/fio-planted.conf");
    std::fs::write(&planted, "planted during the made-up update\n").expect("plant a file");
    set_mc_state(t, &n1, "rendered-1", "rendered-1", "Done").await;
    let note = wait_event(t, names::EVENT_REASON_UPDATE_UNCONFIRMED, &n1, "already").await;
    assert!(note.contains("rendered-1"), "{note}");
    wait_holdoff(t, Some(n2.as_str())).await;
    let statuses = t
        .wait_node_statuses(
            FI,
            &format!("{n1} Failed with the planted file"),
            secs(60),
            |st| {
                st.get(&n1).is_some_and(|x| {
                    condition(x) == FileIntegrityNodeCondition::Failed
                        && x.spec.last_result.files_added >= 1
                })
            },
        )
        .await;
    let kept = &statuses[&n1].spec.last_result.result_config_map_name;
    let report = t
        .get_configmap(kept)
        .await
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("integritylog").cloned())
        .unwrap_or_default();
    assert!(report.contains("fio-planted.conf"), "{kept}:\n{report}");
    assert_backups(s.root(&n1), 0);

    let note = wait_event(t, names::EVENT_REASON_PAUSED_TOO_LONG, &n2, "").await;
    assert!(
        Timestamp::now().duration_since(paused_at).as_secs() + 5 >= MAX_PAUSE.as_secs() as i64,
        "reported before the bound: {note}"
    );
    let labels = [("fileintegrity", FI), ("node", n2.as_str())];
    let text = s.op.metrics().await;
    let since = fio_operator::metrics::sample(
        &text,
        "file_integrity_operator_node_paused_since_timestamp_seconds",
        &labels,
    );
    let at = paused_at.as_second() as f64;
    assert!(
        since.is_some_and(|v| (v - at).abs() < 10.0),
        "paused since {since:?}, paused at {at}\n{text}"
    );
    let status = s.fi().await.status.unwrap_or_default();
    assert!(
        status.node_pauses.get(&n2).is_some_and(|p| p.overdue),
        "{:?}",
        status.node_pauses
    );
    assert!(!status.node_pauses.contains_key(&n1));
    assert_backups(s.root(&n2), 0);
    t.delete_machine_config_pool().await;
}
