//! An upgrade from a real upstream install (issue 23, point 3): the objects and node files as
//! upstream's controller and daemon leave them (shapes and field manager from upstream's source,
//! `pkg/controller/fileintegrity`: `aideDaemonset`, `reinitAideDaemonset`,
//! `handleDefaultConfigMaps`; its daemon's `aide -i` and backups), then our operator and
//! daemons start. What an administrator checks afterwards: the DaemonSet and its pods are ours
//! alone, upstream's leftovers are gone, the node databases and backups are the ones upstream
//! left (no re-init), and every node is Succeeded.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::cluster::{secs, Daemon, Operator, TestNs, TEST_IMAGE};
use crate::support::{backups, ds_name, field_managers, node_status_name, FI, INTERVAL};
use fio_api::{aideconf, names, FileIntegrityNodeCondition, FileIntegrityStatusPhase as Phase};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};

/// Writes are attributed to upstream's binary as client-go names its field manager.
fn upstream_create() -> PostParams {
    PostParams {
        field_manager: Some(names::UPSTREAM_FIELD_MANAGER.into()),
        ..PostParams::default()
    }
}

/// Upstream's `aideDaemonset` for FileIntegrity `fi` (its image: the one the nodes have).
fn upstream_daemonset(t: &TestNs, owner: &Value) -> DaemonSet {
    let ds = ds_name();
    let probe = json!({"requests": {"memory": "10Mi", "cpu": "10m"},
                        "limits": {"memory": "50Mi", "cpu": "50m"}});
    serde_json::from_value(json!({
        "metadata": {"name": ds, "namespace": t.ns, "labels": {names::OWNER_LABEL: FI},
                     "ownerReferences": [owner]},
        "spec": {
            "selector": {"matchLabels": {"app": ds}},
            "template": {
                "metadata": {"labels": {"app": ds, names::POD_LABEL: "", names::OWNER_LABEL: FI}},
                "spec": {
                    "nodeSelector": t.node_selector(),
                    "serviceAccountName": names::DAEMON_SERVICE_ACCOUNT,
                    "initContainers": [{
                        "name": "check-folder", "image": TEST_IMAGE,
                        "securityContext": {"runAsUser": 0},
                        "command": ["sh", "-c", "if [ ! -d \"/host/etc/kubernetes/static-pod-resources\" ]; then echo \"Directory /etc/kubernetes/static-pod-resources does not exist, exiting.\"; exit 1; fi"],
                        "resources": probe,
                        "volumeMounts": [{"name": "hostroot", "mountPath": "/host",
                                          "mountPropagation": "HostToContainer"}]
                    }],
                    "containers": [{
                        "name": "daemon", "image": TEST_IMAGE,
                        "securityContext": {"privileged": true, "runAsUser": 0},
                        "args": ["daemon", "--lc-file=/hostroot/etc/kubernetes/aide.log",
                                 format!("--lc-config-map-prefix={ds}"), format!("--owner={FI}"),
                                 format!("--namespace={}", t.ns), "--interval=10",
                                 "--debug=false", "--maxbackups=5", "--aideconfigdir=/config"],
                        "env": [
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "GODEBUG", "value": "madvdontneed=1"},
                            {"name": "LD_PRELOAD", "value": "/opt/libaide_md5_guard.so"}
                        ],
                        "volumeMounts": [
                            {"name": "hostroot", "mountPath": "/hostroot", "mountPropagation": "HostToContainer"},
                            {"name": "config", "mountPath": "/config"},
                            {"name": "tmp", "mountPath": "/tmp"}
                        ],
                        "resources": {"requests": {"memory": "40Mi", "cpu": "40m"},
                                      "limits": {"memory": "600Mi", "cpu": "300m"}}
                    }],
                    "volumes": [
                        {"name": "hostroot", "hostPath": {"path": "/"}},
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "config", "configMap": {"name": FI}}
                    ]
                }
            }
        }
    }))
    .expect("upstream's DaemonSet")
}

/// Upstream's `reinitAideDaemonset`, in flight (created, not yet deleted by its controller).
fn upstream_reinit_daemonset(t: &TestNs, owner: &Value) -> DaemonSet {
    let name = format!("aide-ini-{FI}");
    let res = json!({"requests": {"memory": "10Mi", "cpu": "10m"},
                     "limits": {"memory": "50Mi", "cpu": "50m"}});
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": t.ns,
                     "labels": {names::UPSTREAM_REINIT_OWNER_LABEL: FI},
                     "ownerReferences": [owner]},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": t.node_selector(),
                    "serviceAccountName": names::OPERATOR_SERVICE_ACCOUNT,
                    "initContainers": [{"name": "reinit-script", "image": TEST_IMAGE,
                        "securityContext": {"privileged": true, "runAsUser": 0},
                        "command": ["/scripts/aide.sh"], "resources": res,
                        "volumeMounts": [
                            {"name": "hostroot", "mountPath": "/hostroot", "mountPropagation": "HostToContainer"},
                            {"name": "aide-reinit", "mountPath": "/scripts"}]}],
                    "containers": [{"name": "pause-script", "image": TEST_IMAGE,
                        "command": ["/scripts/pause.sh"], "resources": res,
                        "volumeMounts": [{"name": "aide-pause", "mountPath": "/scripts"}]}],
                    "volumes": [
                        {"name": "hostroot", "hostPath": {"path": "/"}},
                        {"name": "aide-reinit", "configMap": {"name": "aide-reinit", "defaultMode": 0o744}},
                        {"name": "aide-pause", "configMap": {"name": "aide-pause", "defaultMode": 0o744}}
                    ]
                }
            }
        }
    }))
    .expect("upstream's re-init DaemonSet")
}

fn config_map(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": data}))
        .expect("a ConfigMap")
}

/// What upstream's daemon leaves on a node: the database `aide -i` wrote (real AIDE, with the
/// configuration upstream deployed, moved into place as upstream's daemon does), its log, the
/// backups of one earlier re-init, and `/run/aide.reinit` of an in-flight re-init.
fn upstream_node_files(root: &Path, dir: &Path) {
    let conf = dir.join(format!(
        "aide-{}.conf",
        root.file_name()
            .and_then(|n| n.to_str())
            .expect("a node name")
    ));
    // AIDE 0.18 refuses upstream's `verbose=5` (an AIDE 0.16 option that changes no entry).
    let text: String = aideconf::map_hostroot(aideconf::DEFAULT_CONFIG, root)
        .lines()
        .filter(|l| !l.starts_with("verbose="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&conf, text).expect("write the AIDE configuration");
    let aide = crate::aide::aide_bin();
    let out = Command::new(&aide)
        .arg("-c")
        .arg(&conf)
        .arg("--init")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", aide.display()));
    assert!(out.status.success(), "aide --init: {out:?}");
    let k = root.join("etc/kubernetes");
    std::fs::rename(k.join("aide.db.gz.new"), k.join("aide.db.gz")).expect("aide.db.gz");
    std::fs::rename(k.join("aide.log.new"), k.join("aide.log")).expect("aide.log");
    let stamp = "20261101T10_00_00";
    std::fs::copy(
        k.join("aide.db.gz"),
        k.join(format!("aide.db.gz.backup-{stamp}")),
    )
    .expect("a database backup");
    std::fs::copy(
        k.join("aide.log"),
        k.join(format!("aide.log.backup-{stamp}")),
    )
    .expect("a log backup");
    std::fs::create_dir_all(root.join("run")).expect("run/");
    std::fs::write(root.join("run/aide.reinit"), "").expect("run/aide.reinit");
}

/// Every byte of each node's database directory that the scans must leave alone.
fn node_files(roots: &BTreeMap<String, std::path::PathBuf>) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (node, root) in roots {
        let (db_backups, log_backups) = backups(root);
        for name in ["aide.db.gz".to_owned()]
            .into_iter()
            .chain(db_backups)
            .chain(log_backups)
        {
            let path = root.join("etc/kubernetes").join(&name);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.insert(format!("{node}:{name}"), bytes);
        }
    }
    out
}

fn names_of<T: serde::Serialize>(list: &Option<Vec<T>>) -> Vec<String> {
    list.iter()
        .flatten()
        .map(|x| {
            serde_json::to_value(x).expect("JSON")["name"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

/// The scan DaemonSet's pods on `nodes`, sampled until `stop` turns true: the most nodes that
/// were without a Running pod at one time.
async fn most_nodes_without_a_pod(
    pods: kube::Api<Pod>,
    nodes: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> usize {
    let selector = format!("{}={}", names::APP_LABEL, ds_name());
    let mut most = 0;
    while !*stop.borrow() {
        if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
            let running: std::collections::BTreeSet<String> = list
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                .collect();
            most = most.max(nodes.iter().filter(|n| !running.contains(*n)).count());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_install_is_adopted_as_it_is() {
    let t = TestNs::new("adopt", 2).await;
    let fi = t.create_fi(&t.file_integrity(FI)).await;
    let owner =
        serde_json::to_value(fi.controller_owner_ref(&()).expect("owner reference")).expect("JSON");
    let roots: BTreeMap<_, _> = t
        .nodes
        .iter()
        .map(|n| (n.clone(), t.node_root(n)))
        .collect();

    // -- upstream's objects, as its controller made them -------------------------------------
    let cms = t.api::<ConfigMap>();
    let upstream_cms = [
        config_map(
            FI,
            json!({names::AIDE_CONFIG_LABEL: "", names::OWNER_LABEL: FI}),
            json!({names::DEFAULT_CONFIG_DATA_KEY: aideconf::DEFAULT_CONFIG}),
        ),
        config_map(
            "aide-reinit",
            json!({}),
            json!({"aide.sh": "#!/bin/sh\n    touch /hostroot/run/aide.reinit\n"}),
        ),
        config_map(
            "aide-pause",
            json!({}),
            json!({"pause.sh": "#!/bin/sh\n\tsleep infinity & PID=$!\n\ttrap \"kill $PID\" INT TERM\n\twait $PID || true\n"}),
        ),
        config_map(
            &format!("aide-script-{FI}"),
            json!({}),
            json!({"aide.sh": "#!/bin/sh\n"}),
        ),
    ];
    for cm in &upstream_cms {
        cms.create(&upstream_create(), cm)
            .await
            .expect("create upstream's ConfigMap");
    }
    let dss = t.api::<DaemonSet>();
    let upstream_ds = dss
        .create(&upstream_create(), &upstream_daemonset(&t, &owner))
        .await
        .expect("create upstream's DaemonSet");
    dss.create(&upstream_create(), &upstream_reinit_daemonset(&t, &owner))
        .await
        .expect("create upstream's re-init DaemonSet");
    t.wait_daemonset_rolled_out(&ds_name(), secs(60)).await;
    for root in roots.values() {
        upstream_node_files(root, &t.dir);
    }
    let before = node_files(&roots);

    // -- our operator: upstream's DaemonSet replaced, its pods rolled one node at a time -----
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(most_nodes_without_a_pod(
        t.api::<Pod>(),
        t.nodes.clone(),
        stop_rx,
    ));
    let _op = Operator::start(&t);
    t.wait("the scan DaemonSet taken over", secs(90), async || {
        let ds = dss.get(&ds_name()).await.map_err(|e| e.to_string())?;
        let template = ds.spec.as_ref().and_then(|s| s.template.spec.clone());
        let init = names_of(&template.and_then(|s| s.init_containers));
        init.is_empty()
            .then_some(())
            .ok_or(format!("init containers {init:?}"))
    })
    .await;
    let (ours, _) = t.wait_daemonset_rolled_out(&ds_name(), secs(90)).await;
    assert_eq!(
        ours.uid(),
        upstream_ds.uid(),
        "the same DaemonSet, taken over"
    );
    stop_tx.send(true).expect("stop sampling");
    let most = sampler.await.expect("sampler");
    assert!(
        most <= 1,
        "{most} nodes were without a scan pod at once: the DaemonSet was not rolled node by node"
    );

    // The DaemonSet and its pods are ours alone.
    let managers = field_managers(&ours.metadata);
    // Ours alone (beside the DaemonSet controller's status), so that a field this operator
    // stops setting one day is removed.
    assert!(
        managers
            .iter()
            .all(|m| m == "fio-operator" || m == "kube-controller-manager"),
        "{managers:?}"
    );
    let pods = t
        .api::<Pod>()
        .list(&ListParams::default().labels(&format!("{}={}", names::APP_LABEL, ds_name())))
        .await
        .expect("the scan pods")
        .items;
    assert_eq!(pods.len(), t.nodes.len(), "one scan pod per node");
    for pod in &pods {
        let spec = pod.spec.as_ref().expect("a pod spec");
        assert_eq!(
            names_of(&spec.init_containers),
            Vec::<String>::new(),
            "{}: init containers",
            pod.name_any()
        );
        assert_eq!(names_of(&Some(spec.containers.clone())), ["daemon"]);
        let c = &spec.containers[0];
        assert_eq!(names_of(&c.env), ["NODE_NAME"], "{}: env", pod.name_any());
        // Beside the service account token every pod gets from the API server.
        let ours = |names: Vec<String>| {
            names
                .into_iter()
                .filter(|n| !n.starts_with("kube-api-access-"))
                .collect::<Vec<_>>()
        };
        assert_eq!(ours(names_of(&c.volume_mounts)), ["hostroot", "tmp"]);
        assert_eq!(ours(names_of(&spec.volumes)), ["hostroot", "tmp"]);
        assert_eq!(
            c.args.as_ref().and_then(|a| a.first()).map(String::as_str),
            Some("daemon")
        );
    }

    // Upstream's leftovers are gone.
    for (what, name) in [
        ("DaemonSet", format!("aide-ini-{FI}")),
        ("ConfigMap", "aide-reinit".to_owned()),
        ("ConfigMap", "aide-pause".to_owned()),
        ("ConfigMap", format!("aide-script-{FI}")),
    ] {
        t.wait(&format!("{what} {name} deleted"), secs(30), async || {
            let found = match what {
                "DaemonSet" => dss.get_opt(&name).await.map(|o| o.is_some()),
                _ => cms.get_opt(&name).await.map(|o| o.is_some()),
            }
            .map_err(|e| e.to_string())?;
            (!found).then_some(()).ok_or("still there".to_owned())
        })
        .await;
    }
    // Upstream's config ConfigMap is ours as it is.
    let config = cms.get(FI).await.expect("the config ConfigMap");
    assert_eq!(
        config
            .data
            .as_ref()
            .map(|d| d[names::DEFAULT_CONFIG_DATA_KEY].as_str()),
        Some(aideconf::DEFAULT_CONFIG)
    );

    // -- our daemons scan upstream's databases: Succeeded, nothing re-initialised -----------
    let mut daemons = Vec::new();
    for (node, root) in &roots {
        daemons.push(Daemon::start(&t, FI, node, root, INTERVAL).await);
    }
    for node in &t.nodes {
        let st = t
            .wait(&format!("{node} Succeeded"), secs(90), async || {
                let st = t
                    .api::<fio_api::FileIntegrityNodeStatus>()
                    .get_opt(&node_status_name(node))
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no status yet")?;
                (st.spec.last_result.condition == FileIntegrityNodeCondition::Succeeded)
                    .then_some(st.clone())
                    .ok_or(format!("{:?}", st.spec.last_result))
            })
            .await;
        assert_eq!(
            st.spec.reinit_id.unwrap_or(0),
            0,
            "{node} was re-initialised"
        );
    }
    t.wait_phase(FI, Phase::Active, secs(60)).await;
    for root in roots.values() {
        assert!(
            !root.join("run/aide.reinit").exists(),
            "{}: upstream's re-init trigger is still there",
            root.display()
        );
    }
    assert_eq!(
        node_files(&roots).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the databases and backups on the nodes changed"
    );
    assert!(
        node_files(&roots) == before,
        "a database or backup was rewritten"
    );
}
