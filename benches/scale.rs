//! The operator at 1,000 nodes (issue 5, section 3): a benchmark, not a test.
//!
//!     scripts/testenv.sh up && cargo bench --bench scale      # FIO_SCALE_NODES=1000 default
//!
//! On the real control plane of the tests (`tests/harness`, the fio-harness crate): 1,000 kwok nodes, the operator as
//! its service account, one FileIntegrity over all nodes (its DaemonSet's pods are faked by
//! kwok). A load generator then does what the daemons would: one result per node, created as
//! the daemon creates it (`ScanReport::to_config_map`; a create refused because the node's
//! previous result is not processed yet is tried again, as the daemon does), which the operator
//! processes and deletes. Printed: the time until every node status is
//! current after the last result, the operator's API writes per result (from the API server's
//! `apiserver_request_total`), the operator's peak RSS, and the same for a rolling
//! MachineConfig update over 100 nodes (waves of 10: Working, then Done, then the nodes'
//! re-init results).

use fio_harness as cluster;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::{Operator, TestNs};
use fio_api::result::{DatabaseId, ScanCondition, ScanFigures, ScanReport};
use fio_api::{names, FileIntegrity, FileIntegrityNodeStatus, ReinitRequests};
use fio_operator::controller::fileintegrity::machine_config::{
    MC_CURRENT_CONFIG, MC_DESIRED_CONFIG, MC_STATE,
};
use futures::{stream, FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt as _;
use serde_json::json;

const FI: &str = "scale";
// Issue 22's targets: per result a node status write and the result's delete (plus a share of
// the folded Events).
const TARGET_LATENCY: Duration = Duration::from_millis(1500);
const TARGET_WRITES_PER_RESULT: f64 = 2.1;
const TARGET_RSS_MIB: f64 = 60.0;
const STEADY_ROUNDS: u32 = 3;

/// `apiserver_request_total` summed by (group/resource/subresource, verb, accepted), write
/// verbs only; accepted = a 2xx answer (429s from API priority and fairness, and the client's
/// retries of them, are counted apart).
type Writes = BTreeMap<(String, String, bool), f64>;

async fn apiserver_writes(client: &kube::Client) -> Writes {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client
        .request_text(req)
        .await
        .expect("GET /metrics of the API server");
    let mut out = Writes::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let verb = label("verb");
        if !["POST", "PUT", "PATCH", "APPLY", "DELETE"].contains(&verb.as_str()) {
            continue;
        }
        let resource = format!(
            "{}/{}{}",
            label("group"),
            label("resource"),
            match label("subresource").as_str() {
                "" => String::new(),
                s => format!("/{s}"),
            }
        );
        let accepted = label("code").starts_with('2');
        *out.entry((resource, verb, accepted)).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// The writes between two snapshots that the operator makes: its own kinds, Events (the
/// operator's are events.k8s.io), DaemonSets, and ConfigMap writes less the `generated` ones
/// (the load generator's results). Node, lease and pod writes (kwok, the scheduler) are not the
/// operator's.
/// Returns the operator's accepted writes, its rejected attempts, and a line per kind.
fn operator_writes(before: &Writes, after: &Writes, generated: f64) -> (f64, f64, Vec<String>) {
    let (mut total, mut rejected) = (-generated, 0.0);
    let mut lines = Vec::new();
    for (key, v) in after {
        let (resource, verb, accepted) = key;
        let d = v - before.get(key).unwrap_or(&0.0);
        if d <= 0.0 {
            continue;
        }
        let ours = resource.starts_with(names::GROUP)
            || resource.starts_with("events.k8s.io/")
            || resource.starts_with("apps/daemonsets")
            || resource == "/configmaps";
        lines.push(format!(
            "    {verb:6} {resource:55} {d:>7}{}{}",
            if *accepted { "" } else { " rejected" },
            if ours { "  (operator)" } else { "" }
        ));
        match (ours, accepted) {
            (true, true) => total += d,
            (true, false) => rejected += d,
            _ => {}
        }
    }
    lines.push(format!(
        "    less the load generator's {generated} result writes (ConfigMap POST; its POSTs \
         refused while a node's previous result waited are among the rejected)"
    ));
    (total, rejected, lines)
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One result per node, as each node's daemon writes it; returns how many writes that took.
async fn report(
    t: &TestNs,
    fi: &FileIntegrity,
    nodes: &[String],
    reinit: &BTreeMap<String, i64>,
) -> f64 {
    let api = t.api::<ConfigMap>();
    let pp = PostParams::default();
    stream::iter(nodes.iter().cloned())
        .for_each_concurrent(32, |node| {
            let (api, pp) = (api.clone(), pp.clone());
            async move {
                let completed = reinit.get(&node).copied().unwrap_or(0);
                let scan = ScanReport {
                    owner: FI.into(),
                    node: node.clone(),
                    condition: ScanCondition::Succeeded,
                    reinit_id: Some(completed),
                    database: Some(DatabaseId {
                        sha256: format!("{:064x}", completed + 1),
                        size: 4096,
                        entries: Some(1000),
                    }),
                    initialized: completed > 0,
                    figures: Some(ScanFigures {
                        seconds: 1.5,
                        files: 1000,
                    }),
                    superseded: 0,
                    view: None,
                    realtime: None,
                    accepted: None,
                };
                let cm = scan.to_config_map(&t.ns, &fi.uid().unwrap_or_default());
                loop {
                    match api.create(&pp, &cm).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(e)) if e.code == 409 => {
                            tokio::time::sleep(Duration::from_millis(100)).await
                        }
                        Err(e) => panic!("writing result of {node}: {e}"),
                    }
                }
            }
        })
        .await;
    nodes.len() as f64
}

/// The node statuses a watch has seen, by name.
type Statuses = BTreeMap<String, FileIntegrityNodeStatus>;

/// When the node statuses of the FileIntegrity first satisfy `done`: the arrival of the watch
/// event that made them so. Started (its list done) before the results are written, so the
/// time measured after the last result is the operator's, not this watch's first list of
/// 1,000 statuses. A watch, not a list every 100 ms: listing 1,000 node statuses ten times a
/// second cost the API server more CPU than the operator's writes it was measuring (on this
/// 2-core machine the API server is the bottleneck).
async fn watch_statuses(
    t: &TestNs,
    what: &'static str,
    done: impl Fn(&Statuses) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<Instant> {
    use kube::runtime::watcher;
    let api = t.api::<FileIntegrityNodeStatus>();
    let config = watcher::Config::default().labels(&format!("{}={FI}", names::OWNER_LABEL));
    let (listed_tx, listed) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut listed_tx = Some(listed_tx);
        let mut events = std::pin::pin!(watcher::watcher(api, config).peekable());
        let mut seen = Statuses::new();
        let mut listing = Statuses::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        loop {
            let ev = tokio::time::timeout_at(deadline, events.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap_or_else(|| panic!("the node status watch ended waiting for {what}"));
            let at = Instant::now();
            match ev.unwrap_or_else(|e| panic!("watching node statuses for {what}: {e}")) {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(st) => {
                    listing.insert(st.name_any(), st);
                }
                watcher::Event::InitDone => {
                    seen = std::mem::take(&mut listing);
                    if let Some(tx) = listed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                watcher::Event::Apply(st) => {
                    seen.insert(st.name_any(), st);
                }
                watcher::Event::Delete(st) => {
                    seen.remove(&st.name_any());
                }
            }
            // Checked once the events waiting now are in (a burst is one check, not one per
            // event), and only once listed.
            if listed_tx.is_none() && events.as_mut().peek().now_or_never().is_none() && done(&seen)
            {
                return at;
            }
        }
    });
    listed
        .await
        .unwrap_or_else(|_| panic!("the node status watch for {what} ended before its list"));
    task
}

/// The instant a [`watch_statuses`] saw its condition hold.
async fn done_at(watch: tokio::task::JoinHandle<Instant>) -> Instant {
    watch.await.expect("the node status watch panicked")
}

async fn set_mc(t: &TestNs, nodes: &[String], current: &str, desired: &str, state: &str) {
    let api: Api<Node> = Api::all(t.client.clone());
    for n in nodes {
        let patch = json!({"metadata": {"annotations": {
            MC_CURRENT_CONFIG: current, MC_DESIRED_CONFIG: desired, MC_STATE: state,
        }}});
        api.patch(n, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate node");
    }
}

async fn wait_fi(t: &TestNs, what: &str, done: impl Fn(&FileIntegrity) -> bool) -> FileIntegrity {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let fi = t.get_fi(FI).await;
        if done(&fi) {
            return fi;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn holdoff(fi: &FileIntegrity) -> Option<String> {
    fi.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::HOLDOFF_ANNOTATION).cloned())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; nothing to filter.
    let n: usize = std::env::var("FIO_SCALE_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let setup = Instant::now();
    let t = TestNs::new("scale", n).await;
    println!("{n} kwok nodes Ready in {:.1?}", setup.elapsed());
    let op = Operator::start(&t);
    let mut fi = t.file_integrity(FI);
    fi.spec.config.grace_period = 900;
    let fi = t.create_fi(&fi).await;
    let ds = names::daemonset_name(FI);
    let rollout = Instant::now();
    t.wait_daemonset_rolled_out(&ds, Duration::from_secs(600))
        .await;
    println!(
        "DaemonSet {ds}: {n} pods (kwok) rolled out in {:.1?}",
        rollout.elapsed()
    );

    // An earlier run's namespace being deleted would count its deletions as ours.
    let namespaces: Api<Namespace> = Api::all(t.client.clone());
    let quiet = Instant::now() + Duration::from_secs(300);
    while Instant::now() < quiet {
        let old = namespaces
            .list(&ListParams::default())
            .await
            .expect("list namespaces")
            .items
            .into_iter()
            .filter(|ns| {
                ns.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("fio-scale-") && n != t.ns)
            })
            .count();
        if old == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // 1. One result per node.
    let before = apiserver_writes(&t.client).await;
    let start = Instant::now();
    let watch = watch_statuses(&t, "every node status", move |seen| seen.len() == n).await;
    let generated = report(&t, &fi, &t.nodes, &BTreeMap::new()).await;
    let last_result = Instant::now();
    let all = done_at(watch).await;
    let latency = all.saturating_duration_since(last_result);
    // Settle: the FileIntegrity's phase and any trailing writes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = apiserver_writes(&t.client).await;
    let (writes, rejected, lines) = operator_writes(&before, &after, generated);
    let per_result = writes / n as f64;
    println!(
        "\n{n} results written in {:.1?}; every node status current {:.2?} after the last result  [target < {TARGET_LATENCY:?}: {}]",
        last_result - start,
        latency,
        verdict(latency < TARGET_LATENCY)
    );
    println!(
        "operator API writes: {writes} = {per_result:.2} per result  [target <= {TARGET_WRITES_PER_RESULT}: {}]; {rejected} attempts rejected",
        verdict(per_result <= TARGET_WRITES_PER_RESULT)
    );
    println!("  API writes during the phase (apiserver_request_total deltas):");
    for l in &lines {
        println!("{l}");
    }

    // 1b. The steady state: the next result of every node, over the node statuses the first
    // round created (a node reports every gracePeriod; only the first results create them).
    // Three rounds: one run's figure varies with the machine as much as with the code.
    for round in 1..=STEADY_ROUNDS {
        let versions: BTreeMap<String, String> = t
            .api::<FileIntegrityNodeStatus>()
            .list(&ListParams::default().labels(&format!("{}={FI}", names::OWNER_LABEL)))
            .await
            .expect("list node statuses")
            .items
            .into_iter()
            .map(|st| (st.name_any(), st.resource_version().unwrap_or_default()))
            .collect();
        let before = apiserver_writes(&t.client).await;
        let start = Instant::now();
        let watch = watch_statuses(&t, "every node status updated", move |seen| {
            seen.len() == n
                && seen.values().all(|st| {
                    versions.get(&st.name_any()).map(String::as_str)
                        != st.resource_version().as_deref()
                })
        })
        .await;
        let generated = report(&t, &fi, &t.nodes, &BTreeMap::new()).await;
        let last_result = Instant::now();
        let all = done_at(watch).await;
        let steady = all.saturating_duration_since(last_result);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = apiserver_writes(&t.client).await;
        let (writes, rejected, _) = operator_writes(&before, &after, generated);
        println!(
            "\nsteady state {round}/{STEADY_ROUNDS}, {n} more results written in {:.1?}; every node status current {steady:.2?} after the last result  [target < {TARGET_LATENCY:?}: {}]; operator API writes {:.2} per result [{}]; {rejected} attempts rejected",
            last_result - start,
            verdict(steady < TARGET_LATENCY),
            writes / n as f64,
            verdict(writes / n as f64 <= TARGET_WRITES_PER_RESULT),
        );
    }

    // 2. Rolling MachineConfig update over 100 nodes, waves of 10.
    let rolled: Vec<String> = t.nodes.iter().take(100.min(n)).cloned().collect();
    // Their pool rolls rendered-2 out: the operator re-initialises a node only for an update
    // its pool confirms (all its machines ran rendered-1 when their pause began).
    t.set_machine_config_pool("rendered-1").await;
    t.set_machine_config_pool("rendered-2").await;
    set_mc(&t, &rolled, "rendered-1", "rendered-1", "Done").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = apiserver_writes(&t.client).await;
    let start = Instant::now();
    let mut generated = 0.0;
    let mut worst_pause = Duration::ZERO;
    let mut worst_resume = Duration::ZERO;
    for wave in rolled.chunks(10) {
        let t0 = Instant::now();
        set_mc(&t, wave, "rendered-1", "rendered-2", "Working").await;
        wait_fi(&t, "the wave paused", |fi| {
            let h = holdoff(fi).unwrap_or_default();
            wave.iter().all(|n| h.split(',').any(|x| x == n))
        })
        .await;
        worst_pause = worst_pause.max(t0.elapsed());
        let t1 = Instant::now();
        set_mc(&t, wave, "rendered-2", "rendered-2", "Done").await;
        let fi_now = wait_fi(&t, "the wave resumed with re-init requests", |fi| {
            let req = ReinitRequests::of(fi).ok().flatten().unwrap_or_default();
            holdoff(fi).is_none() && wave.iter().all(|n| req.requested(n) > 0)
        })
        .await;
        worst_resume = worst_resume.max(t1.elapsed());
        // The daemons re-initialise and report.
        let req = ReinitRequests::of(&fi_now)
            .ok()
            .flatten()
            .unwrap_or_default();
        let ids: BTreeMap<String, i64> =
            wave.iter().map(|n| (n.clone(), req.requested(n))).collect();
        let (wave_nodes, wave_ids) = (wave.to_vec(), ids.clone());
        let watch = watch_statuses(&t, "the wave's re-inits confirmed", move |seen| {
            wave_nodes.iter().all(|n| {
                seen.values()
                    .any(|s| s.spec.node_name == *n && s.spec.reinit_id == wave_ids.get(n).copied())
            })
        })
        .await;
        generated += report(&t, &fi_now, wave, &ids).await;
        done_at(watch).await;
    }
    let took = start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = apiserver_writes(&t.client).await;
    let (writes, rejected, lines) = operator_writes(&before, &after, generated);
    println!(
        "\nrolling update over {} nodes (waves of 10): {took:.1?}; node Working -> paused <= {worst_pause:.2?}, Done -> re-init requested <= {worst_resume:.2?}",
        rolled.len()
    );
    println!(
        "operator API writes: {writes} ({:.2} per node: pause, resume + re-init request, result); {rejected} attempts rejected",
        writes / rolled.len() as f64
    );
    for l in &lines {
        println!("{l}");
    }
    let rss = op.pid().map_or(0.0, peak_rss_mib);
    println!(
        "\noperator peak RSS (VmHWM): {rss:.1} MiB  [target < {TARGET_RSS_MIB} MiB: {}]",
        verdict(rss < TARGET_RSS_MIB)
    );
    let metrics = op.metrics().await;
    for name in [
        "file_integrity_operator_reconcile_total",
        "file_integrity_operator_reconcile_errors_total",
    ] {
        for l in metrics.lines().filter(|l| l.starts_with(name)) {
            println!("  {l}");
        }
    }
}
