//! Waiting: polling until something holds ([`TestNs::wait`]) or checking that it keeps holding
//! ([`TestNs::holds_for`]), both failing early when a process of the test exited; the waits for
//! a FileIntegrity's phase, its node statuses and a DaemonSet's rollout built on them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fio_api::{FileIntegrity, FileIntegrityNodeStatus, FileIntegrityStatusPhase};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;

use super::{summarize_node_statuses, TestNs, POLL};

impl TestNs {
    // ---- waiting ----

    /// Polls `attempt` until it returns `Ok`, at most `limit`; panics with `what` and the last
    /// state `attempt` reported (its `Err`) on timeout. Fails early when a registered process
    /// exited.
    pub async fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        mut attempt: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let start = Instant::now();
        loop {
            self.check_processes();
            let last = match attempt().await {
                Ok(v) => return v,
                Err(state) => state,
            };
            if start.elapsed() >= limit {
                panic!(
                    "timed out after {:.0?} waiting for {what}\nlast observed: {last}",
                    limit
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Checks `check` repeatedly for `duration`: it must hold every time (for "stays so").
    pub async fn holds_for(
        &self,
        what: &str,
        duration: Duration,
        mut check: impl AsyncFnMut() -> Result<(), String>,
    ) {
        let start = Instant::now();
        while start.elapsed() < duration {
            self.check_processes();
            if let Err(state) = check().await {
                panic!(
                    "{what} stopped holding after {:.1?}: {state}",
                    start.elapsed()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for `status.phase == phase`; returns the object.
    pub async fn wait_phase(
        &self,
        fi: &str,
        phase: FileIntegrityStatusPhase,
        limit: Duration,
    ) -> FileIntegrity {
        let api = self.api::<FileIntegrity>();
        self.wait(
            &format!("FileIntegrity {fi} phase {phase}"),
            limit,
            async || {
                let o = api.get(fi).await.map_err(|e| e.to_string())?;
                let status = o.status.clone().unwrap_or_default();
                if status.phase == Some(phase) {
                    Ok(o)
                } else {
                    Err(format!(
                        "phase {:?}, message {:?}, annotations {:?}",
                        status.phase, status.message, o.metadata.annotations
                    ))
                }
            },
        )
        .await
    }

    /// Waits until `pred` holds for the node statuses of `fi`; returns them.
    pub async fn wait_node_statuses(
        &self,
        fi: &str,
        what: &str,
        limit: Duration,
        pred: impl Fn(&BTreeMap<String, FileIntegrityNodeStatus>) -> bool,
    ) -> BTreeMap<String, FileIntegrityNodeStatus> {
        self.wait(
            &format!("node statuses of {fi}: {what}"),
            limit,
            async || {
                let s = self.node_statuses(fi).await?;
                if pred(&s) {
                    Ok(s)
                } else {
                    Err(summarize_node_statuses(&s))
                }
            },
        )
        .await
    }

    /// Waits until the DaemonSet `ds` is fully rolled out (observedGeneration current, every
    /// desired pod updated and ready, `n` desired) and one Running pod of it is on each of the
    /// test's nodes; returns the DaemonSet and the pods by node.
    pub async fn wait_daemonset_rolled_out(
        &self,
        ds: &str,
        limit: Duration,
    ) -> (DaemonSet, BTreeMap<String, Pod>) {
        let api = self.api::<DaemonSet>();
        let n = self.nodes.len() as i32;
        self.wait(
            &format!("DaemonSet {ds} rolled out with a Running pod on each of {n} nodes"),
            limit,
            async || {
                let d = api.get(ds).await.map_err(|e| format!("get {ds}: {e}"))?;
                let st = d.status.clone().unwrap_or_default();
                let generation = d.metadata.generation.unwrap_or(0);
                let rolled = st.observed_generation == Some(generation)
                    && st.desired_number_scheduled == n
                    && st.updated_number_scheduled == Some(n)
                    && st.number_ready == n
                    && st.number_available == Some(n);
                let pods = self.running_pods(ds).await?;
                let on_nodes = self.nodes.iter().all(|node| pods.contains_key(node));
                if rolled && on_nodes && pods.len() == self.nodes.len() {
                    Ok((d, pods))
                } else {
                    Err(format!(
                        "generation {generation}, status {st:?}, running pods on {:?}",
                        pods.keys().collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await
    }
}
