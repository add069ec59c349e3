//! Re-initialisation: on demand (all nodes, one node, the Failed nodes), across an operator
//! crash, after a rewritten database; the seed's backups on the nodes.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use crate::cluster::{self, secs};
use crate::support::{
    active_scenario, after, assert_backups, backups, condition, failed_cm, has_annotation,
    reinit_id, reinit_requests, result_cm, FI, INTERVAL,
};
use fio_api::{
    names, FileIntegrity, FileIntegrityNodeCondition, FileIntegrityStatusPhase as Phase,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// A changed file on node-2: node-2 Failed (filesChanged 1) with a persistent ConfigMap naming
/// the file, the others stay Succeeded. Then re-init all: the annotation is removed, every node
/// re-initialises once with the seed's backups, all Succeeded again, the failure stays on record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_file_fails_one_node_then_reinit_all_recovers() {
    let mut s = active_scenario("fail", 3, |_| {}).await;
    let n2 = s.node(1).to_owned();
    let changed_at = s.change_resolv_conf(&n2);

    let st = s.wait_failed(&n2, 1).await;
    // Metrics (issue 5): the failure gauge, the transition, the scan figures the daemon reported;
    // after an operator restart the gauge is back at 1 at once (upstream reset it to 0).
    let gauge = "file_integrity_operator_node_failed";
    let text = s.op.wait_metric(gauge, &[("node", &n2)], 1.0).await;
    let m =
        |name: &str, labels: &[(&str, &str)]| fio_operator::metrics::sample(&text, name, labels);
    assert_eq!(m(gauge, &[("node", s.node(0))]), Some(0.0), "{text}");
    assert_eq!(
        m(
            "file_integrity_operator_node_status_total",
            &[("condition", "Failed"), ("node", &n2)]
        ),
        Some(1.0),
        "{text}"
    );
    let scan = [("fileintegrity", FI), ("node", n2.as_str())];
    let files = m("file_integrity_operator_scan_files", &scan);
    assert!(
        files.is_some_and(|n| n >= 4.0),
        "scan_files {files:?}\n{text}"
    );
    let took = m("file_integrity_operator_scan_duration_seconds", &scan);
    assert!(took.is_some_and(|d| d >= 0.0), "{text}");
    s.op.restart();
    s.op.wait_metric(gauge, &[("node", &n2)], 1.0).await;
    let t = &s.t;
    let r = &st.spec.last_result;
    assert_eq!((r.files_added, r.files_removed), (0, 0));
    assert_eq!(r.result_config_map_name, failed_cm(&n2));
    assert_eq!(r.result_config_map_namespace, t.ns);
    let failed = t
        .get_configmap(&failed_cm(&n2))
        .await
        .expect("persistent failure ConfigMap");
    let report = failed
        .data
        .as_ref()
        .and_then(|d| d.get(names::INTEGRITY_LOG_KEY))
        .expect("integritylog in the failure ConfigMap");
    // The daemon maps /hostroot to its --hostroot: accept either spelling of the path.
    assert!(
        report.contains("/etc/resolv.conf"),
        "report does not name resolv.conf:\n{report}"
    );
    let labels = failed.metadata.labels.clone().unwrap_or_default();
    assert!(labels.contains_key(names::RESULT_LOG_LABEL), "{labels:?}");
    assert!(!labels.contains_key(names::LOG_LABEL), "{labels:?}");
    assert!(
        failed
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default()
            .is_empty(),
        "the failure ConfigMap must not be owned (it survives the FileIntegrity)"
    );
    // As the seed says: the daemon's result ConfigMap is deleted once processed; what stays is
    // the kept copy that the node status references.
    let cms = t.api::<ConfigMap>();
    t.wait(
        "node-2's result processed and deleted",
        secs(30),
        async || match cms.get_opt(&result_cm(&n2)).await {
            Ok(None) => Ok(()),
            Ok(Some(cm)) => Err(format!("{} still there", cm.name_any())),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;

    // The other nodes keep reporting Succeeded after the change; Failed does not change the phase.
    let others: Vec<String> = t.nodes.iter().filter(|n| **n != n2).cloned().collect();
    let statuses = t
        .wait_node_statuses(FI, "the other nodes scanned again", secs(40), |s| {
            others
                .iter()
                .all(|n| s.get(n).is_some_and(|st| after(st, Some(changed_at))))
        })
        .await;
    for n in &others {
        assert_eq!(
            condition(&statuses[n]),
            FileIntegrityNodeCondition::Succeeded
        );
        assert!(
            statuses[n]
                .spec
                .results
                .iter()
                .all(|r| r.condition == FileIntegrityNodeCondition::Succeeded),
            "{n}: {:?}",
            statuses[n].spec.results
        );
    }
    assert_eq!(
        s.fi().await.status.unwrap_or_default().phase,
        Some(Phase::Active)
    );

    // Re-init all.
    let reinit_at = Timestamp::now();
    t.annotate_fi(FI, names::REINIT_ANNOTATION, "").await;
    let requested = s.wait_reinit_confirmed(&t.nodes, reinit_at, secs(90)).await;
    let ids: BTreeSet<_> = requested.values().collect();
    assert_eq!(ids.len(), 1, "one request for all nodes: {requested:?}");
    t.wait_phase(FI, Phase::Active, secs(30)).await;
    s.op.wait_metric(gauge, &[("node", &n2)], 0.0).await;
    let text = s.op.metrics().await;
    assert_eq!(
        fio_operator::metrics::sample(
            &text,
            "file_integrity_operator_reinit_total",
            &[("by", "demand"), ("node", "")]
        ),
        Some(1.0),
        "one re-init on demand since the last restart\n{text}"
    );
    for root in s.roots.values() {
        assert_backups(root, 1);
    }
    // Earlier failures stay visible: node-2's results keep the Failed entry, its ConfigMap stays.
    let st = &t.node_statuses(FI).await.expect("node statuses")[&n2];
    assert!(
        st.spec
            .results
            .iter()
            .any(|r| r.condition == FileIntegrityNodeCondition::Failed),
        "{:?}",
        st.spec.results
    );
    assert!(t.get_configmap(&failed_cm(&n2)).await.is_some());
    // Exactly once: another two intervals bring no more backups.
    s.backups_stay("one backup per node", secs(2 * INTERVAL), &t.nodes, 1)
        .await;
}

/// `re-init=<node-2>` re-initialises node-2 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinit_of_one_node_leaves_the_others_alone() {
    let s = active_scenario("reinit1", 3, |_| {}).await;
    let t = &s.t;
    let n2 = s.node(1).to_owned();
    s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;
    let before = t.node_statuses(FI).await.expect("node statuses");

    let at = Timestamp::now();
    t.annotate_fi(FI, names::REINIT_ANNOTATION, &n2).await;
    let requested = s
        .wait_reinit_confirmed(std::slice::from_ref(&n2), at, secs(60))
        .await;
    for n in t.nodes.iter().filter(|n| **n != n2) {
        assert!(
            requested.get(n).copied().unwrap_or(0) <= reinit_id(&before[n]),
            "{n} was not requested: {requested:?}"
        );
    }
    assert_backups(s.root(&n2), 1);
    t.holds_for(
        "only node-2 re-initialised, once",
        secs(2 * INTERVAL),
        async || {
            let now = t.node_statuses(FI).await?;
            for (n, root) in &s.roots {
                let want = usize::from(*n == n2);
                let (db, log) = backups(root);
                if db.len() != want || log.len() != want {
                    return Err(format!("{n}: {db:?} {log:?}"));
                }
                if *n != n2 && now.get(n).map(reinit_id) != before.get(n).map(reinit_id) {
                    return Err(format!(
                        "{n}: reinitId changed: {}",
                        cluster::summarize_node_statuses(&now)
                    ));
                }
            }
            Ok(())
        },
    )
    .await;
    t.wait_phase(FI, Phase::Active, secs(30)).await;
}

/// The operator crashes while a re-init is under way: every node re-initialises exactly once
/// and none is forgotten; the phase stays Initializing until the last node confirmed; a
/// restarted daemon does not re-initialise again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_restart_mid_reinit_reinitialises_each_node_once() {
    let mut s = active_scenario("restart", 3, |_| {}).await;
    let (n1, n2, n3) = (
        s.node(0).to_owned(),
        s.node(1).to_owned(),
        s.node(2).to_owned(),
    );

    // 1. Node-3's daemon is down; the request is recorded; the operator crashes.
    s.daemon(&n3).stop();
    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, "").await;
    let fis = s.t.api::<FileIntegrity>();
    let first =
        s.t.wait("the re-init request recorded", secs(30), async || {
            let fi = fis.get(FI).await.map_err(|e| e.to_string())?;
            let (_, req) = reinit_requests(&fi);
            if !has_annotation(&fi, names::REINIT_ANNOTATION) && req.len() == 3 {
                Ok(req)
            } else {
                Err(format!("{:?}", fi.metadata.annotations))
            }
        })
        .await;
    s.op.kill();
    // The daemons act on the request without the operator.
    for n in [&n1, &n2] {
        let root = s.root(n).to_path_buf();
        s.t.wait(
            &format!("{n} re-initialised on disk"),
            secs(30),
            async || {
                let (db, _) = backups(&root);
                if db.len() == 1 {
                    Ok(())
                } else {
                    Err(format!("backups {db:?}"))
                }
            },
        )
        .await;
    }
    s.op.start_again();
    s.t.wait_node_statuses(FI, "node-1 and node-2 confirmed", secs(60), |st| {
        [&n1, &n2].iter().all(|n| {
            st.get(*n).is_some_and(|x| {
                reinit_id(x) == first[*n]
                    && condition(x) == FileIntegrityNodeCondition::Succeeded
                    && after(x, Some(at))
            })
        })
    })
    .await;
    let fi = s.t.wait_phase(FI, Phase::Initializing, secs(30)).await;
    let msg = fi.status.and_then(|st| st.message).unwrap_or_default();
    assert!(
        msg.contains(&n3),
        "status.message names the node still re-initialising: {msg:?}"
    );
    // A restarted daemon does not re-initialise again.
    s.daemon(&n1).kill();
    s.daemon(&n1).start_again();
    s.t.holds_for(
        "Initializing while node-3 has not confirmed; node-1 not re-initialised again",
        secs(INTERVAL + 5),
        async || {
            let fi = fis.get(FI).await.map_err(|e| e.to_string())?;
            let phase = fi.status.unwrap_or_default().phase;
            if phase != Some(Phase::Initializing) {
                return Err(format!("phase {phase:?}"));
            }
            let (db, _) = backups(&s.roots[&n1]);
            if db.len() != 1 {
                return Err(format!("node-1 backups {db:?}"));
            }
            Ok(())
        },
    )
    .await;
    // Node-3 comes back and catches up.
    s.daemon(&n3).start_again();
    s.wait_reinit_confirmed(&s.t.nodes, at, secs(60)).await;
    s.t.wait_phase(FI, Phase::Active, secs(30)).await;
    for root in s.roots.values() {
        assert_backups(root, 1);
    }

    // 2. The operator crashes right after the annotation (before or while handling it).
    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, "").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.op.restart();
    let second = s.wait_reinit_confirmed(&s.t.nodes, at, secs(90)).await;
    assert!(
        s.t.nodes.iter().all(|n| second[n] > first[n]),
        "second request {second:?} after {first:?}"
    );
    s.t.wait_phase(FI, Phase::Active, secs(30)).await;
    s.t.holds_for(
        "exactly two re-inits per node",
        secs(2 * INTERVAL),
        async || {
            for (n, root) in &s.roots {
                let (db, log) = backups(root);
                if db.len() != 2 || log.len() != 2 {
                    return Err(format!("{n}: {db:?} {log:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// Issue 4, section 2 (tamper-evident baseline): root on a node changes a file and rewrites
/// `aide.db.gz` to match, so a plain check would find nothing. The daemon compares the database
/// with the baseline anchored off the node at the last legitimate (re-)init and does not use it;
/// the operator checks the digest each result reports as well: the node goes Errored, not
/// Succeeded, and the phase Error; a requested re-init moves the anchor and the node is
/// Succeeded again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_database_is_errored_until_reinit() {
    let s = active_scenario("baseline", 2, |_| {}).await;
    let t = &s.t;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    let first = t.node_statuses(FI).await.expect("node statuses");
    let anchored = first[&n2]
        .spec
        .baseline
        .clone()
        .expect("a baseline is anchored with the first result");
    assert_eq!(anchored.sha256.len(), 64, "{anchored:?}");

    // The attack: change a file, then build a database of the changed tree with the node's own
    // configuration and put it in place.
    s.change_resolv_conf(&n2);
    let root = s.root(&n2);
    let config = t
        .get_configmap(FI)
        .await
        .and_then(|cm| cm.data)
        .and_then(|mut d| d.remove(names::DEFAULT_CONFIG_DATA_KEY))
        .expect("the rendered AIDE configuration");
    let attacker_conf = root
        .parent()
        .expect("node root parent")
        .join("attacker.conf");
    fs::write(
        &attacker_conf,
        fio_api::aideconf::map_hostroot(&config, root),
    )
    .expect("write the attacker's config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fio-scanner"))
        .arg("-c")
        .arg(&attacker_conf)
        .arg("--init")
        .output()
        .expect("run fio-scanner --init");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let db = root.join("etc/kubernetes");
    fs::rename(db.join("aide.db.gz.new"), db.join("aide.db.gz")).expect("replace the database");
    let since = Timestamp::now();

    let statuses = t
        .wait_node_statuses(
            FI,
            &format!("{n2} Errored: database does not match the baseline"),
            secs(60),
            |st| {
                st.get(&n2).is_some_and(|s| {
                    condition(s) == FileIntegrityNodeCondition::Errored
                        && after(s, Some(since))
                        && s.spec
                            .last_result
                            .error_message
                            .contains("does not match the baseline recorded at")
                })
            },
        )
        .await;
    assert_eq!(
        statuses[&n2].spec.baseline.as_ref(),
        Some(&anchored),
        "anchor moved"
    );
    let text = s.op.metrics().await;
    for (name, labels) in [
        (
            "file_integrity_operator_baseline_mismatch_total",
            vec![("node", n2.as_str())],
        ),
        (
            "file_integrity_operator_node_status_error_total",
            vec![("error", "BaselineMismatch"), ("node", n2.as_str())],
        ),
    ] {
        let v = fio_operator::metrics::sample(&text, name, &labels);
        assert!(v.is_some_and(|v| v >= 1.0), "{name}: {v:?}\n{text}");
    }
    // The result named the rewritten database by the digest of the bytes its check read.
    let reported = &statuses[&n2].spec.last_result.error_message;
    let rewritten = fio_core::hash::sha256_hex(
        &std::fs::read(s.root(&n2).join("etc/kubernetes/aide.db.gz")).expect("node-2's database"),
    );
    assert!(
        reported.contains(&rewritten[..12]),
        "{reported} does not name {rewritten}"
    );
    assert_eq!(
        condition(&statuses[&n1]),
        FileIntegrityNodeCondition::Succeeded
    );
    t.wait_phase(FI, Phase::Error, secs(30)).await;
    s.op.wait_metric(
        "file_integrity_operator_error_total",
        &[("error", "NodeErrored")],
        1.0,
    )
    .await;

    // A legitimate re-init of node-2 moves the anchor; Succeeded again, phase Active.
    let at = Timestamp::now();
    t.annotate_fi(FI, names::REINIT_ANNOTATION, &n2).await;
    s.wait_reinit_confirmed(std::slice::from_ref(&n2), at, secs(60))
        .await;
    let statuses = t
        .wait_node_statuses(
            FI,
            &format!("{n2} Succeeded after re-init"),
            secs(60),
            |st| {
                st.get(&n2).is_some_and(|s| {
                    condition(s) == FileIntegrityNodeCondition::Succeeded && after(s, Some(at))
                })
            },
        )
        .await;
    let moved = statuses[&n2].spec.baseline.clone().expect("baseline");
    assert_ne!(moved.sha256, anchored.sha256);
    t.wait_phase(FI, Phase::Active, secs(30)).await;
}

/// `re-init-on-failed` re-initialises the Failed nodes only (upstream OCPBUGS-18933).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinit_on_failed_reinitialises_only_failed_nodes() {
    let s = active_scenario("onfailed", 3, |_| {}).await;
    let t = &s.t;
    let n2 = s.node(1).to_owned();
    s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;
    let at = Timestamp::now();
    t.annotate_fi(FI, names::REINIT_ON_FAILED_ANNOTATION, "")
        .await;
    s.wait_reinit_confirmed(std::slice::from_ref(&n2), at, secs(60))
        .await;
    let fi = s.fi().await;
    assert!(!has_annotation(&fi, names::REINIT_ON_FAILED_ANNOTATION));
    let (_, requested) = reinit_requests(&fi);
    assert_eq!(
        requested.keys().cloned().collect::<Vec<_>>(),
        vec![n2.clone()],
        "only the Failed node is requested"
    );
    for n in &t.nodes {
        assert_backups(s.root(n), usize::from(*n == n2));
    }
}

/// Issue 11, point 8: a client replaces the FileIntegrity (`kubectl replace` of the original
/// manifest: every operator annotation gone) while node-2 has not yet done its re-init, and
/// again after it. No request is lost: node-2 still re-initialises once, the record comes back,
/// no configuration re-init of every node follows, and the next request re-initialises node-1
/// (before: the counter restarted at 1, below what node-1 had completed, so it skipped it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_fileintegrity_loses_no_reinit() {
    let mut s = active_scenario("replace", 2, |_| {}).await;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    let fis = s.t.api::<FileIntegrity>();
    let replace = async || {
        // As `kubectl replace -f` of the manifest: its fields, the current resourceVersion
        // (kubectl fetches it for custom resources), no annotations, no status.
        let mut fi = fis.get(FI).await.expect("read the FileIntegrity");
        fi.metadata.annotations = None;
        fi.status = None;
        fis.replace(FI, &kube::api::PostParams::default(), &fi)
            .await
            .expect("replace the FileIntegrity");
    };

    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, "").await;
    let first = s.wait_reinit_confirmed(&s.t.nodes, at, secs(60)).await;

    // Mid-flight: node-2's daemon is down when the next request is recorded; then the replace.
    s.daemon(&n2).stop();
    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, &n2).await;
    let second =
        s.t.wait("node-2's request recorded", secs(30), async || {
            let fi = fis.get(FI).await.map_err(|e| e.to_string())?;
            let (_, req) = reinit_requests(&fi);
            match req.get(&n2) {
                Some(id) if *id > first[&n2] => Ok(*id),
                _ => Err(format!("{:?}", fi.metadata.annotations)),
            }
        })
        .await;
    replace().await;
    let fi = s.fi().await;
    assert!(
        !has_annotation(&fi, names::REINIT_REQUESTS_ANNOTATION),
        "the replace removed the annotation"
    );
    s.daemon(&n2).start_again();
    let statuses =
        s.t.wait_node_statuses(FI, "node-2 confirmed its request", secs(60), |st| {
            st.get(&n2).is_some_and(|x| {
                reinit_id(x) == second
                    && condition(x) == FileIntegrityNodeCondition::Succeeded
                    && after(x, Some(at))
            })
        })
        .await;
    assert_eq!(reinit_id(&statuses[&n1]), first[&n1], "node-1 not asked");
    s.t.wait(
        "the record restored in the annotation",
        secs(30),
        async || {
            let fi = fis.get(FI).await.map_err(|e| e.to_string())?;
            let (seq, req) = reinit_requests(&fi);
            if seq >= second && req.get(&n2) == Some(&second) {
                Ok(())
            } else {
                Err(format!("{:?}", fi.metadata.annotations))
            }
        },
    )
    .await;
    assert_backups(s.root(&n1), 1);
    assert_backups(s.root(&n2), 2);

    // After the re-inits: replaced again, then node-1 asked; it re-initialises (id above all).
    replace().await;
    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, &n1).await;
    let third = s
        .wait_reinit_confirmed(std::slice::from_ref(&n1), at, secs(60))
        .await;
    assert!(third[&n1] > second, "{third:?} after {second}");
    s.backups_stay(
        "node-1 re-initialised once more, node-2 not",
        secs(INTERVAL),
        std::slice::from_ref(&n1),
        2,
    )
    .await;
    assert_backups(s.root(&n2), 2);
    s.t.wait_phase(FI, Phase::Active, secs(30)).await;
}
