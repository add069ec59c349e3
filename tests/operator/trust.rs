//! Issues 11 and 22: one node is hostile. Its root holds its daemon's token (bound to its pod on
//! its node); with it, it tries to speak for another node or another FileIntegrity, to
//! overwrite, and to flood etcd. The API server refuses (the admission policy of deploy/rbac;
//! daemons may only create), what reaches the operator anyway is rejected with an Event, the
//! other node's results and kept report are untouched, and the operator's memory stays bounded.

use fio_api::names;
use fio_api::result::{DatabaseId, ScanCondition, ScanReport};
use fio_api::FileIntegrityNodeCondition;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use crate::cluster::{client_from, secs};
use crate::support::*;

/// A result of `node` as a daemon would write it, claiming a clean scan of database `sha`.
fn forged(node: &str, reinit_id: i64, initialized: bool) -> ScanReport {
    ScanReport {
        owner: FI.into(),
        node: node.into(),
        condition: ScanCondition::Succeeded,
        reinit_id: Some(reinit_id),
        database: Some(DatabaseId {
            sha256: "f".repeat(64),
            size: 1,
            entries: None,
        }),
        initialized,
        figures: None,
        superseded: 0,
        view: None,
        realtime: None,
        accepted: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_speak_for_another() {
    let s = active_scenario("forge", 2, |_| {}).await;
    let t = &s.t;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    // node-2 has a kept failure report to protect.
    s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;
    let kept_before = t
        .get_configmap(&failed_cm(&n2))
        .await
        .expect("node-2's kept report");

    let uid = s.fi().await.uid().unwrap_or_default();
    let node1 = client_from(s.daemons[&n1].kubeconfig()).await;
    let as_node1: Api<ConfigMap> = Api::namespaced(node1, &t.ns);
    let pp = PostParams::default();
    let ap = PatchParams::apply("attacker").force();
    // A daemon only creates; overwriting (apply) is refused whatever the name.
    let refused = async |what: &str, cm: ConfigMap| {
        let mut messages = Vec::new();
        let created = as_node1.create(&pp, &cm).await.map(|_| ());
        let applied = as_node1
            .patch(&cm.name_any(), &ap, &Patch::Apply(&cm))
            .await
            .map(|_| ());
        for (how, r) in [("create", created), ("apply", applied)] {
            match r {
                Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
                    messages.push(e.message)
                }
                other => panic!(
                    "{what} ({how}): the API server accepted it or failed otherwise: {other:?}"
                ),
            }
        }
        messages
    };
    // 1. node-2's result, name and labels: neither created nor overwritten.
    let msgs = refused(
        "node-2's result",
        forged(&n2, 0, false).to_config_map(&t.ns, &uid),
    )
    .await;
    assert!(
        msgs[0].contains(&format!("a daemon on node {n1}")),
        "{msgs:?}"
    );
    // 2. node-2's name with node-1's labels (squatting or overwriting it).
    let mut cm = forged(&n1, 0, false).to_config_map(&t.ns, &uid);
    cm.metadata.name = Some(result_cm(&n2));
    let msgs = refused("node-2's result name", cm).await;
    assert!(
        msgs[0].contains(&format!("only its result ConfigMap {}", result_cm(&n1))),
        "{msgs:?}"
    );
    // 3. node-1's name, node-2's label.
    let mut cm = forged(&n2, 0, false).to_config_map(&t.ns, &uid);
    cm.metadata.name = Some(result_cm(&n1));
    refused("node-2's label under node-1's name", cm).await;
    // 3b. Issue 22: its own node, another FileIntegrity (the owner label must be the one of
    // its pod's DaemonSet), and its own result overwritten in place.
    let mut cm = forged(&n1, 0, false).to_config_map(&t.ns, &uid);
    cm.metadata.name = Some(format!("aide-another-{n1}"));
    cm.labels_mut()
        .insert(names::OWNER_LABEL.into(), "another".into());
    let msgs = refused("another FileIntegrity's result", cm).await;
    assert!(
        msgs[0].contains("reports only for the FileIntegrity of its DaemonSet"),
        "{msgs:?}"
    );
    let own = forged(&n1, 0, false).to_config_map(&t.ns, &uid);
    match as_node1
        .patch(&own.name_any(), &ap, &Patch::Apply(&own))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 => {}
        other => panic!("node-1 overwrote its own result: {other:?}"),
    }
    // 4. node-2's kept report, the configuration, and any other name.
    for name in [failed_cm(&n2), FI.to_owned(), "aide-unrelated".to_owned()] {
        let mut cm = forged(&n1, 0, false).to_config_map(&t.ns, &uid);
        cm.metadata.name = Some(name.clone());
        refused(&name, cm).await;
    }
    // 5. Its own result with data beside the report and the change list (issue 26).
    let mut cm = forged(&n1, 0, false).to_config_map(&t.ns, &uid);
    cm.data
        .get_or_insert_with(Default::default)
        .insert("payload".into(), "x".into());
    let msgs = refused("data beside the report", cm).await;
    assert!(
        msgs[0].contains("sends only its report and change list"),
        "{msgs:?}"
    );
    // Reads: its FileIntegrity's configuration (a Role per FileIntegrity, by name), nothing
    // else: not node-2's kept report, not the configuration of another FileIntegrity.
    as_node1
        .get(FI)
        .await
        .expect("the daemon reads its configuration");
    for name in [failed_cm(&n2), "another-fileintegrity".to_owned()] {
        match as_node1.get(&name).await {
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            other => panic!("node-1's daemon read ConfigMap {name}: {other:?}"),
        }
    }
    // The daemon identity without a pod-bound token creates nothing at all.
    let unbound = t.client_as(crate::cluster::Identity::Daemon).await;
    let msg = match Api::<ConfigMap>::namespaced(unbound, &t.ns)
        .create(&pp, &forged(&n1, 0, false).to_config_map(&t.ns, &uid))
        .await
    {
        Err(kube::Error::Api(e)) => e.message,
        other => panic!("an unbound daemon token created a result: {other:?}"),
    };
    assert!(msg.contains("not bound to a pod on a node"), "{msg}");

    // 5. Its own result, pinning its anchor with a re-init id never requested: reaches the
    // operator, which does not believe it (visibly, for node-1 only).
    let cm = forged(&n1, i64::MAX, true).to_config_map(&t.ns, &uid);
    // Created once its daemon's last result is processed (a node has one at a time).
    t.wait(
        "node-1's own forged result created",
        secs(30),
        async || match as_node1.create(&pp, &cm).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;
    // Kept as node-1's latest Errored result (the daemon's next one is Succeeded again).
    let st = t
        .wait_node_statuses(FI, "node-1's pinning result not believed", secs(60), |s| {
            s.get(&n1).is_some_and(|st| {
                st.spec.results.iter().any(|r| {
                    r.condition == FileIntegrityNodeCondition::Errored
                        && r.error_message
                            .contains("the newest re-init requested for it is 0")
                })
            })
        })
        .await;
    assert!(
        reinit_id(&st[&n1]) < 1_000,
        "anchor pinned: {:?}",
        st[&n1].spec.reinit_id
    );

    // 6. Without the admission policy (a cluster that lacks it): a result under node-2's name
    // with node-1's labels reaches the operator, which deletes it with an Event.
    let mut cm = forged(&n1, 0, false).to_config_map(&t.ns, &uid);
    cm.metadata.name = Some(format!("{}-x", result_cm(&n2)));
    t.api::<ConfigMap>()
        .create(&pp, &cm)
        .await
        .expect("admin creates the squatting result");
    let squat = cm.name_any();
    t.wait(
        "the squatting result rejected with an Event",
        secs(60),
        async || {
            let events = t
                .api::<Event>()
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let rejected = events.items.iter().any(|e| {
                e.reason.as_deref() == Some(names::EVENT_REASON_RESULT_REJECTED)
                    && e.message.as_deref().is_some_and(|m| m.contains(&squat))
            });
            let gone = t.get_configmap(&squat).await.is_none();
            if rejected && gone {
                Ok(())
            } else {
                Err(format!("event: {rejected}, deleted: {gone}"))
            }
        },
    )
    .await;

    // node-2 keeps reporting for itself (still Failed, newer results), its report intact.
    let since = Timestamp::now();
    let st = t
        .wait_node_statuses(FI, "node-2 reporting after the attacks", secs(60), |s| {
            s.get(&n2).is_some_and(|st| after(st, Some(since)))
        })
        .await;
    assert_eq!(condition(&st[&n2]), FileIntegrityNodeCondition::Failed);
    // Its kept report is still its own (rewritten by its own later failures only): same
    // labels, same database digest, its own changed file.
    let kept_after = t.get_configmap(&failed_cm(&n2)).await.expect("kept report");
    assert_eq!(kept_after.labels(), kept_before.labels());
    let sha = |c: &ConfigMap| c.annotations().get(names::DB_SHA256_ANNOTATION).cloned();
    assert_eq!(sha(&kept_after), sha(&kept_before));
    let log = kept_after
        .data
        .as_ref()
        .and_then(|d| d.get(names::INTEGRITY_LOG_KEY))
        .cloned()
        .unwrap_or_default();
    let own_file = s.root(&n2).join("etc/resolv.conf");
    assert!(log.contains(&own_file.display().to_string()), "{log}");
}

/// Issue 22, attack 2: node-1's token floods the namespace with 1 MiB results (the attack that
/// once OOM-killed the operator at its next restart). The API server admits at most its one
/// unprocessed result under its one name, and nothing over 1 MiB; what it admits the operator processes and deletes;
/// after a restart the operator's peak memory stays far under its limit (200 MiB in
/// deploy/operator.yaml), and node-2's change still shows within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_flood_etcd_or_the_operator() {
    let mut s = active_scenario("flood", 2, |_| {}).await;
    let t = &s.t;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    let uid = s.fi().await.uid().unwrap_or_default();
    let as_node1: Api<ConfigMap> =
        Api::namespaced(client_from(s.daemons[&n1].kubeconfig()).await, &t.ns);
    let report = |bytes: usize| {
        let r = ScanReport {
            condition: ScanCondition::Failed {
                counts: fio_api::result::FileCounts {
                    added: 1,
                    changed: 0,
                    removed: 0,
                },
                log: fio_api::result::Log::Text("x".repeat(bytes)),
                changes: None,
            },
            ..forged(&n1, 0, false)
        };
        r.to_config_map(&t.ns, &uid)
    };
    let (big, fits) = (report(1024 * 1024 + 1), report(1000 * 1024));
    let (mut created, mut too_big, mut busy) = (0, 0, 0);
    let pp = PostParams::default();
    for i in 0..200 {
        let cm = if i % 2 == 0 { &big } else { &fits };
        match as_node1.create(&pp, cm).await {
            Ok(_) => created += 1,
            // (the API server's own limit on a ConfigMap, 1 MiB, answers first: 422)
            Err(kube::Error::Api(e)) if i % 2 == 0 && (e.code == 422 || e.code == 403) => {
                too_big += 1
            }
            Err(kube::Error::Api(e)) if e.code == 409 => busy += 1,
            Err(e) => panic!("create {i}: {e}"),
        }
    }
    assert_eq!(too_big, 100, "created {created}, busy {busy}");
    assert_eq!(created + busy, 100);
    // Whatever was admitted is processed and deleted: no result of node-1 stays.
    t.wait("node-1's results processed", secs(60), async || {
        let left = t
            .api::<ConfigMap>()
            .list(&ListParams::default().labels(&format!("{}={n1}", names::NODE_LABEL)))
            .await
            .map_err(|e| e.to_string())?;
        let results: Vec<String> = left
            .items
            .iter()
            .filter(|c| c.labels().contains_key(names::LOG_LABEL))
            .map(|c| c.name_any())
            .collect();
        if results.is_empty() {
            Ok(())
        } else {
            Err(format!("{results:?}"))
        }
    })
    .await;

    // The routine restart that once ended in an OOM kill.
    s.op.restart();
    let changed_at = s.change_resolv_conf(&n2);
    s.wait_failed(&n2, 1).await;
    let took = Timestamp::now().duration_since(changed_at);
    assert!(
        took.as_secs() < INTERVAL as i64 + 30,
        "node-2's change took {took:?} to show"
    );
    let pid = s.op.pid().expect("the operator runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    assert!(
        peak_kib < 100 * 1024,
        "operator peak RSS {peak_kib} KiB after the restart"
    );
}

/// A daemon that stops reporting does not leave its node Succeeded: within two and a half
/// intervals its node status is Errored saying since when nothing came, with a metric (and the
/// alert of deploy/monitoring on it); its next result clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_becomes_visibly_errored() {
    let mut s = active_scenario("silent", 2, |_| {}).await;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    s.daemon(&n1).stop();
    let stopped = std::time::Instant::now();
    let st =
        s.t.wait_node_statuses(FI, "node-1 marked silent", secs(120), |st| {
            st.get(&n1)
                .is_some_and(|x| fio_operator::controller::silence::is_silence(&x.spec.last_result))
        })
        .await;
    let allowed = fio_operator::controller::silence::allowance(INTERVAL as i64);
    // Its last result came at most one interval before the stop; the operator looks again a
    // second after the deadline.
    assert!(
        stopped.elapsed() <= allowed + secs(15),
        "marked after {:?}",
        stopped.elapsed()
    );
    let msg = &st[&n1].spec.last_result.error_message;
    assert!(msg.contains(&format!("on node {n1} since")), "{msg}");
    assert_eq!(condition(&st[&n1]), FileIntegrityNodeCondition::Errored);
    assert_eq!(condition(&st[&n2]), FileIntegrityNodeCondition::Succeeded);
    let labels = [("fileintegrity", FI), ("node", n1.as_str())];
    s.op.wait_metric("file_integrity_operator_node_silent", &labels, 1.0)
        .await;
    s.t.wait_phase(FI, fio_api::FileIntegrityStatusPhase::Error, secs(30))
        .await;

    let back = Timestamp::now();
    s.daemon(&n1).start_again();
    s.wait_all_succeeded_after("node-1's daemon is back", Some(back), secs(60))
        .await;
    s.op.wait_metric("file_integrity_operator_node_silent", &labels, 0.0)
        .await;
}

/// Two operator replicas (an upgrade's new pod next to the old one, or a scaled Deployment):
/// exactly one reconciles; when it dies, the other takes over within the lease duration, and
/// the takeover re-initialises no node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_one_leads_and_a_takeover_reinitialises_no_node() {
    let mut s = active_scenario("leader", 2, |_| {}).await;
    let (n1, n2) = (s.node(0).to_owned(), s.node(1).to_owned());
    let before: Vec<usize> = [&n1, &n2]
        .iter()
        .map(|n| backups(s.root(n)).0.len())
        .collect();
    // The second one is the next version (an upgrade): its daemons run another image.
    let next = format!("{}-next", crate::cluster::TEST_IMAGE);
    // An upgrade changes the operator's Deployment first: its bound follows its image.
    s.t.set_operator_image(&next).await;
    let second = crate::cluster::Operator::start_image(&s.t, "operator-2", &next);
    // The controllers log "watching namespace" once they start: the candidate never gets there.
    s.t.holds_for(
        "the second operator waits for the lease",
        secs(15),
        async || {
            let log = second.log();
            if log.contains("watching namespace") {
                Err(format!("the second operator reconciles too:\n{log}"))
            } else {
                Ok(())
            }
        },
    )
    .await;
    assert!(
        second.log().contains("waiting for lease"),
        "{}",
        second.log()
    );

    // The leader crashes without releasing the lease.
    s.op.kill();
    let killed = std::time::Instant::now();
    s.t.wait("the second operator leads", secs(60), async || {
        let log = second.log();
        if log.contains("watching namespace") {
            Ok(())
        } else {
            Err(log)
        }
    })
    .await;
    assert!(
        killed.elapsed() < secs(40),
        "took over after {:?}",
        killed.elapsed()
    );
    // The upgrade rolls the daemons to the new image; no node is re-initialised by it.
    let ds = s.t.api::<k8s_openapi::api::apps::v1::DaemonSet>();
    s.t.wait("the DaemonSet runs the new image", secs(60), async || {
        let d = ds.get(&ds_name()).await.map_err(|e| e.to_string())?;
        let image = d
            .spec
            .and_then(|sp| sp.template.spec)
            .and_then(|p| p.containers.first().and_then(|c| c.image.clone()));
        if image.as_deref() == Some(next.as_str()) {
            Ok(())
        } else {
            Err(format!("{image:?}"))
        }
    })
    .await;
    s.t.wait_daemonset_rolled_out(&ds_name(), secs(90)).await;
    let rolled = Timestamp::now();
    let ids: Vec<i64> = {
        let st = s.t.node_statuses(FI).await.expect("node statuses");
        [&n1, &n2].iter().map(|n| reinit_id(&st[*n])).collect()
    };
    s.wait_all_succeeded_after("the roll to the new image", Some(rolled), secs(60))
        .await;
    let st = s.t.node_statuses(FI).await.expect("node statuses");
    assert_eq!(
        [&n1, &n2]
            .iter()
            .map(|n| reinit_id(&st[*n]))
            .collect::<Vec<_>>(),
        ids,
        "a re-init id moved"
    );
    assert_backups(s.root(&n1), before[0]);
    assert_backups(s.root(&n2), before[1]);

    // It reconciles: a re-init of node-1 is handled, node-2 is left alone.
    let at = Timestamp::now();
    s.t.annotate_fi(FI, names::REINIT_ANNOTATION, &n1).await;
    s.wait_reinit_confirmed(std::slice::from_ref(&n1), at, secs(90))
        .await;
    assert_backups(s.root(&n1), before[0] + 1);
    assert_backups(s.root(&n2), before[1]);
    drop(second);
}

/// Issue 11, point 5: a second FileIntegrity selecting the same node does not share (and
/// re-initialise) the first one's files: its node status is Errored naming the owner and its
/// phase Error, while the first one's database, backups and results stay as they were. Once the
/// first is deleted, the second takes the files over with one re-init (the first one's
/// database kept as its backup) and reaches Active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_scanned_by_one_fileintegrity_at_a_time() {
    use crate::cluster::Daemon;
    use fio_api::{FileIntegrity, FileIntegrityStatusPhase as Phase};

    let mut s = active_scenario("twofi", 1, |_| {}).await;
    let n = s.node(0).to_owned();
    let root = s.root(&n).to_path_buf();
    let db = root.join("etc/kubernetes/aide.db.gz");
    let first_db = std::fs::read(&db).expect("the first FileIntegrity's database");
    let second = "second-fileintegrity";
    s.t.create_fi(&s.t.file_integrity(second)).await;
    s.t.wait_daemonset_rolled_out(&names::daemonset_name(second), secs(60))
        .await;
    let mut d2 = Daemon::start(&s.t, second, &n, &root, INTERVAL).await;
    s.t.wait_node_statuses(
        second,
        "the second one refused on the node",
        secs(60),
        |st| {
            st.get(&n).is_some_and(|x| {
                condition(x) == FileIntegrityNodeCondition::Errored
                    && x.spec.last_result.error_message.contains(FI)
            })
        },
    )
    .await;
    let fi2 = s.t.wait_phase(second, Phase::Error, secs(30)).await;
    let msg = fi2.status.and_then(|st| st.message).unwrap_or_default();
    assert!(msg.contains(FI), "status.message names the owner: {msg}");
    let since = Timestamp::now();
    s.t.holds_for(
        "the first one's files and results untouched",
        secs(2 * INTERVAL),
        async || {
            if std::fs::read(&db).ok().as_deref() != Some(first_db.as_slice()) {
                return Err("aide.db.gz changed".into());
            }
            let (dbs, logs) = backups(&root);
            if !dbs.is_empty() || !logs.is_empty() {
                return Err(format!("backups {dbs:?} {logs:?}"));
            }
            let st = s.t.node_statuses(FI).await?;
            match st.get(&n) {
                Some(x) if condition(x) == FileIntegrityNodeCondition::Succeeded => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    s.t.wait_node_statuses(FI, "the first one still scanning", secs(30), |st| {
        st.get(&n).is_some_and(|x| after(x, Some(since)))
    })
    .await;

    // The first goes away: the second takes over with one re-init.
    let d1 = s.daemon(&n);
    d1.allow_exit();
    d1.stop();
    s.t.api::<FileIntegrity>()
        .delete(FI, &kube::api::DeleteParams::default())
        .await
        .expect("delete the first FileIntegrity");
    let at = Timestamp::now();
    s.t.wait_node_statuses(second, "the second one took over", secs(90), |st| {
        st.get(&n).is_some_and(|x| {
            condition(x) == FileIntegrityNodeCondition::Succeeded && after(x, Some(at))
        })
    })
    .await;
    s.t.wait_phase(second, Phase::Active, secs(30)).await;
    assert_backups(&root, 1);
    let (dbs, _) = backups(&root);
    let kept = std::fs::read(root.join("etc/kubernetes").join(&dbs[0])).expect("the backup");
    assert_eq!(kept, first_db, "the first one's database is the backup");
    let claim = std::fs::read_to_string(root.join("etc/kubernetes/aide.owner")).expect("claim");
    assert!(claim.contains(&format!("/{second}")), "{claim}");
    d2.stop();
}

/// Issue 22, the operator's own permissions: its token (which must create DaemonSets in its
/// namespace) is refused every DaemonSet that is not the product's scan DaemonSet, by the
/// policy of deploy/rbac/operator_admission_policy.yaml; it may neither grant itself another
/// image nor patch or delete that policy. (Deleting and restoring the cluster-wide policies is the real-node test's: here other
/// tests run beside this one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_token_runs_only_the_products_daemonsets() {
    use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::rbac::v1::Role;
    use serde_json::{json, Value};
    let s = active_scenario("opbound", 1, |_| {}).await;
    let t = &s.t;
    let operator = t.client_as(crate::cluster::Identity::Operator).await;
    let as_operator: Api<DaemonSet> = Api::namespaced(operator.clone(), &t.ns);
    // The operator's own DaemonSet, admitted (the scenario is Active), as the template.
    let ours = t
        .api::<DaemonSet>()
        .get(&ds_name())
        .await
        .expect("aide-<fi>");
    let mut base = serde_json::to_value(&ours).expect("json");
    base["metadata"] = json!({"name": "aide-probe"});
    base.as_object_mut().map(|o| o.remove("status"));
    fn pod(d: &mut Value) -> &mut Value {
        &mut d["spec"]["template"]["spec"]
    }
    fn container(d: &mut Value) -> &mut Value {
        &mut pod(d)["containers"][0]
    }
    fn push(list: &mut Value, item: Value) {
        if let Some(a) = list.as_array_mut() {
            a.push(item);
        }
    }
    type Change = (&'static str, fn(&mut Value), &'static str);
    let changes: [Change; 11] = [
        (
            "another name",
            |d| d["metadata"]["name"] = json!("miner"),
            "only the scan DaemonSets",
        ),
        (
            "another image",
            |d| container(d)["image"] = json!("busybox:latest"),
            "the operator's own image",
        ),
        (
            "an unconfined daemon",
            |d| push(&mut container(d)["args"], json!("--insecure-no-harden")),
            "never with an --insecure-* option",
        ),
        (
            "another command",
            |d| container(d)["command"] = json!(["sh", "-c"]),
            "runs `fio-operator daemon`",
        ),
        (
            "a privileged container",
            |d| container(d)["securityContext"]["privileged"] = json!(true),
            "not privileged",
        ),
        (
            "another host path",
            |d| {
                let etc = json!({"name": "etc", "hostPath": {"path": "/etc"}});
                push(&mut pod(d)["volumes"], etc)
            },
            "mounts the host root (hostPath /) and emptyDirs only",
        ),
        (
            "the host root elsewhere",
            |d| {
                let again = json!({"name": "hostroot", "mountPath": "/host2"});
                push(&mut container(d)["volumeMounts"], again)
            },
            "at /hostroot only",
        ),
        (
            "a preloaded library",
            |d| {
                let preload = json!({"name": "LD_PRELOAD", "value": "/hostroot/tmp/x.so"});
                push(&mut container(d)["env"], preload)
            },
            "no environment but NODE_NAME",
        ),
        (
            "the host's IPC namespace",
            |d| pod(d)["hostIPC"] = json!(true),
            "without host IPC or network",
        ),
        (
            "another service account",
            |d| pod(d)["serviceAccountName"] = json!("default"),
            "file-integrity-daemon service account",
        ),
        (
            "a second container",
            |d| {
                let mut second = container(d).clone();
                second["name"] = json!("second");
                push(&mut pod(d)["containers"], second)
            },
            "exactly one container",
        ),
    ];
    let pp = PostParams::default();
    for (what, change, says) in &changes {
        let mut d = base.clone();
        change(&mut d);
        let ds: DaemonSet = serde_json::from_value(d).expect("a DaemonSet");
        match as_operator.create(&pp, &ds).await {
            Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => assert!(
                e.message.contains(says),
                "{what}: refused, but not saying {says:?}: {}",
                e.message
            ),
            Err(e) => panic!("{what}: {e}"),
            Ok(_) => panic!("{what}: the operator's token created it"),
        }
    }
    // The unchanged copy is admitted: the refusals above are the policy's, not RBAC's.
    let ok: DaemonSet = serde_json::from_value(base).expect("a DaemonSet");
    as_operator
        .create(&pp, &ok)
        .await
        .expect("the product's own DaemonSet shape is admitted");
    as_operator
        .delete("aide-probe", &Default::default())
        .await
        .expect("delete the probe");
    // Nor may it name another image for itself: RBAC refuses a Role granting what its author
    // does not hold (the operator may create and patch Roles, for its daemons' configuration).
    let roles: Api<Role> = Api::namespaced(operator.clone(), &t.ns);
    let grant = |name: &str| {
        serde_json::from_value::<Role>(json!({
            "metadata": {"name": name, "namespace": t.ns},
            "rules": [{
                "apiGroups": [names::GROUP], "resources": [names::DAEMON_IMAGES],
                "resourceNames": ["busybox:latest"], "verbs": ["use"]
            }]
        }))
        .expect("a Role")
    };
    for (what, result) in [
        (
            "create a Role granting another image",
            roles.create(&pp, &grant("aide-images")).await.map(|_| ()),
        ),
        (
            "rewrite its image Role",
            roles
                .patch(
                    names::OPERATOR_IMAGE_ROLE,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"rules": grant("x").rules})),
                )
                .await
                .map(|_| ()),
        ),
    ] {
        assert!(
            matches!(&result, Err(kube::Error::Api(e)) if e.code == 403),
            "the operator's token may {what}: {result:?}"
        );
    }
    // An image the installer did not grant (an operator upgraded without its Role): shown on the
    // FileIntegrity, not only as DaemonSets that never come.
    t.set_operator_image("busybox:latest").await;
    let fi = t
        .wait_phase(FI, fio_api::FileIntegrityStatusPhase::Error, secs(60))
        .await;
    let message = fi.status.and_then(|st| st.message).unwrap_or_default();
    let want = format!(
        "does not grant it its daemon image {}",
        crate::cluster::TEST_IMAGE
    );
    assert!(message.contains(&want), "{message}");
    t.set_operator_image(crate::cluster::TEST_IMAGE).await;
    t.wait_phase(FI, fio_api::FileIntegrityStatusPhase::Active, secs(60))
        .await;
    // Its own bound it may read, not change.
    let policies = Api::<ValidatingAdmissionPolicy>::all(operator);
    policies
        .get(names::OPERATOR_ADMISSION_POLICY)
        .await
        .expect("the operator reads its bound");
    let patch = Patch::Merge(json!({"spec": {"failurePolicy": "Ignore"}}));
    for (verb, result) in [
        (
            "patch",
            policies
                .patch(
                    names::OPERATOR_ADMISSION_POLICY,
                    &PatchParams::default(),
                    &patch,
                )
                .await
                .map(|_| ()),
        ),
        (
            "delete",
            policies
                .delete(names::OPERATOR_ADMISSION_POLICY, &Default::default())
                .await
                .map(|_| ()),
        ),
    ] {
        assert!(
            matches!(&result, Err(kube::Error::Api(e)) if e.code == 403),
            "the operator may {verb} its own bound: {result:?}"
        );
    }
}
