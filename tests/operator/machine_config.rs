//! MachineConfig updates (issue 5, section 1): the machine-config daemon's Node annotations,
//! the holdoff annotation, the pause and the re-init after a node's update.

use std::time::Duration;

use crate::cluster::{secs, TestNs};
use crate::support::{active_scenario, assert_backups, condition, FI, INTERVAL};
use fio_api::holdoff::{MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE};
use fio_api::{names, FileIntegrityNodeCondition, FileIntegrityStatusPhase as Phase};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

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
/// during the update), re-initialised exactly once after it, and Succeeded; node-2 goes Failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_config_update_pauses_the_node_and_reinitialises_it_once() {
    let s = active_scenario("mcupdate", 2, |_| {}).await;
    let t = &s.t;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    // Both nodes managed by the machine-config daemon and up to date: nothing happens.
    for n in [&n1, &n2] {
        set_mc_state(t, n, "rendered-1", "rendered-1", "Done").await;
    }
    t.holds_for(
        "no pause for up-to-date nodes",
        secs(3),
        async || match holdoff(t).await {
            None => Ok(()),
            h => Err(format!("holdoff {h:?}")),
        },
    )
    .await;

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
    s.wait_reinit_confirmed(std::slice::from_ref(&n1), done_at, secs(60))
        .await;
    wait_holdoff(t, None).await;
    assert_backups(s.root(&n1), 1);
    assert_backups(s.root(&n2), 0);
    let statuses = t.node_statuses(FI).await.expect("node statuses");
    assert_eq!(
        condition(&statuses[&n2]),
        FileIntegrityNodeCondition::Failed
    );
    // More Node events (kwok heartbeats, a repeated Done) bring no second re-init.
    set_mc_state(t, &n1, "rendered-2", "rendered-2", "Done").await;
    s.backups_stay(
        "one re-init of node-1",
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
            "file_integrity_operator_reinit_total",
            vec![("by", "node"), ("node", n1.as_str())],
        ),
    ] {
        assert_eq!(
            fio_operator::metrics::sample(&text, name, &labels),
            Some(1.0),
            "{name}{labels:?}\n{text}"
        );
    }
}

/// A rolling update over three nodes, one at a time: node-1 with an operator crash between
/// Working and Done, node-2 ending Degraded, node-3 plainly. Each node is re-initialised exactly
/// once, only after its own update, and only the node being updated is paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_machine_config_update_with_degraded_node_and_operator_restart() {
    let mut s = active_scenario("mcroll", 3, |_| {}).await;
    let nodes = s.t.nodes.clone();
    for n in &nodes {
        set_mc_state(&s.t, n, "rendered-1", "rendered-1", "Done").await;
    }
    for (i, n) in nodes.iter().enumerate() {
        set_mc_state(&s.t, n, "rendered-1", "rendered-2", "Working").await;
        wait_holdoff(&s.t, Some(n.as_str())).await;
        s.change_resolv_conf(n);
        if i == 0 {
            // A crash mid-update: the pause survives, the re-init happens once.
            s.op.kill();
            tokio::time::sleep(secs(1)).await;
            s.op.start_again();
        }
        let end_at = Timestamp::now();
        if i == 1 {
            set_mc_state(&s.t, n, "rendered-1", "rendered-2", "Degraded").await;
        } else {
            set_mc_state(&s.t, n, "rendered-2", "rendered-2", "Done").await;
        }
        s.wait_reinit_confirmed(std::slice::from_ref(n), end_at, secs(60))
            .await;
        wait_holdoff(&s.t, None).await;
        for (j, other) in nodes.iter().enumerate() {
            assert_backups(s.root(other), usize::from(j <= i));
        }
    }
    s.wait_all_succeeded_after("the rolling update", None, secs(60))
        .await;
    s.backups_stay("one re-init per node", secs(INTERVAL + 2), &nodes, 1)
        .await;
}
