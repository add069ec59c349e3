//! Expected changes (issue 28) on the real nodes: a rule lets the kubelet's unit rewrite the
//! certificates under `/etc/fio-test`. Its rotations are accepted per path: the node stays
//! Succeeded, its baseline moves for that entry only, nothing is re-initialised, rolled out or
//! restarted. The same write from a pod fails the node, the pod named; a rule that cannot be
//! used is an Error phase naming it.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::changes::{kubectl_fio, plugin_dir, status};
use super::realtime::{listed, pod_writer};
use super::{
    backups, condition, daemon_pod, end_update, k, kn, kube_dir, start_update, wait_condition,
    wait_phase, DS, FI, N1, N2, NS,
};
use fio_harness::real::{kubectl, kubectl_try, repo_path, wait_until, RealNodes, WRITER_IMAGE};
use fio_harness::secs;

/// The certificate the rule covers (selected by `/etc/ CONTENT_EX`, in every baseline).
const DIR: &str = "etc/fio-test";
const CA: &str = "etc/fio-test/ca.crt";
const RULE: &str = "kubelet-ca";
/// In real-1's baseline: what the machine-config daemon's pod appends to during an update.
const MCD_FILE: &str = "etc/fio-test/mcd.conf";
/// Written during that update by another writer (the test), and after it.
const OTHER_FILE: &str = "etc/fio-test/other-during-update.conf";
const AFTER_FILE: &str = "etc/fio-test/after-update.conf";
const MCD_POD: &str = "machine-config-daemon-e2e";
const ROTATIONS: usize = 10;

/// The certificate on both workers, before their first baseline.
pub fn seed(real: &RealNodes) {
    for node in &real.names {
        let dir = real.root(node).join(DIR);
        std::fs::create_dir_all(&dir).expect("create /etc/fio-test");
        std::fs::write(real.root(node).join(CA), "ca 0\n").expect("write the certificate");
        std::fs::write(real.root(node).join(MCD_FILE), "mcd 0\n").expect("write mcd.conf");
        for f in [OTHER_FILE, AFTER_FILE] {
            let _ = std::fs::remove_file(real.root(node).join(f));
        }
    }
}

fn set_rules(rules: Value) {
    let patch = serde_json::json!({"spec": {"expectedChanges": rules}});
    kn(&[
        "patch",
        "fileintegrity",
        FI,
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
}

fn rule(pattern: &str, kind: &str) -> Value {
    serde_json::json!([{
        "name": RULE,
        "paths": [pattern],
        "writers": [{"kind": kind, "name": "kubelet.service"}]
    }])
}

/// A shell placed in real-2's kubelet cgroup writes `content` over the certificate in place
/// and stays a while (a writer must still run when the daemon reads who it is, as the
/// kubelet does).
fn as_kubelet(real: &RealNodes, content: &str) -> Child {
    let cgroup = real.kubelet_cgroup(N2);
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for h in /sys/fs/cgroup/*/; do [ -f \"${{h}}{cgroup}/cgroup.procs\" ] && echo $$ > \"${{h}}{cgroup}/cgroup.procs\"; done; \
             printf '%s\\n' '{content}' > '{}'; sleep 40",
            real.root(N2).join(CA).display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("run sh")
}

/// real-2's database, decompressed, as lines (its comments, which date it, aside).
fn db_lines(real: &RealNodes) -> Vec<String> {
    let path = kube_dir(real, N2).join("aide.db.gz");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::io::BufReader::new(flate2::read::GzDecoder::new(f))
        .lines()
        .map(|l| l.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|l| !l.starts_with('#'))
        .collect()
}

fn accepted(st: &Value) -> Vec<Value> {
    st["acceptedChanges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What must not move while rotations are accepted: the completed re-init, the DaemonSet's
/// generation, the daemon pod and its restarts, and the daemon's initialisations.
fn fixed() -> (String, String, String, usize) {
    let st = status(N2);
    let ds = kn(&["get", "ds", DS, "-o", "jsonpath={.metadata.generation}"]);
    let (pod, _) = daemon_pod(N2);
    let restarts = kn(&[
        "get",
        "pod",
        &pod,
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    let inits = kn(&["logs", &format!("pod/{pod}")])
        .matches("initializing AIDE db")
        .count();
    (
        format!("reinitId {}", st["reinitId"]),
        format!("generation {ds}"),
        format!("pod {pod} restarts {restarts}"),
        inits,
    )
}

/// Poll real-2's condition until `done` holds, failing on any condition but Succeeded.
fn succeeded_until(what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let st = status(N2);
        let c = &st["lastResult"]["condition"];
        assert_eq!(c, "Succeeded", "{N2} while {what}: {}", st["lastResult"]);
        if done(&st) {
            return st;
        }
        assert!(
            started.elapsed() < timeout,
            "{what}: not after {timeout:?}: {st}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The whole section (scans 15 minutes apart: what moves the baseline is the acceptance).
pub fn rules(real: &RealNodes) {
    wait_condition(N2, "Succeeded", 60);
    let path = format!("/{CA}");

    // -- rules that cannot be used: the phase is Error, naming the rule and the field --------
    set_rules(rule("/etc/fio-test/[.crt", "unit"));
    wait_phase("Error", "expectedChanges[kubelet-ca].paths[0]", 60);
    set_rules(rule("/etc/fio-test/*.crt", "daemon"));
    wait_phase("Error", "expectedChanges[kubelet-ca].writers[0].kind", 60);
    set_rules(rule("/etc/fio-test/*.crt", "unit"));
    wait_phase("Active", "", 60);

    // -- one rotation by the kubelet's unit: accepted, the node Succeeded throughout ---------
    let section_start = k8s_openapi::jiff::Timestamp::now() - Duration::from_secs(1);
    let before = fixed();
    let backups_before = backups(real, N2);
    let db_before = db_lines(real);
    let mut writers = vec![as_kubelet(real, "ca 1")];
    let started = Instant::now();
    let st = succeeded_until("one rotation is accepted", secs(60), |st| {
        accepted(st)
            .first()
            .is_some_and(|r| r["path"] == path.as_str() && r["acceptedAt"].is_string())
    });
    eprintln!(
        "[real nodes] expected: a rotation by kubelet.service accepted {:?} after the write",
        started.elapsed()
    );
    let records = accepted(&st);
    assert_eq!(records.len(), 1, "one accepted change: {records:?}");
    let r = &records[0];
    assert_eq!(r["by"], format!("rule {RULE}"), "{r}");
    assert_eq!(r["kind"], "changed", "{r}");
    assert_eq!(r["writers"][0]["unit"], "kubelet.service", "{r}");
    assert_eq!(r["writers"][0]["state"], "attributed", "{r}");
    // The node's new database differs from the old in exactly that entry.
    let db_after = db_lines(real);
    let gone: Vec<&String> = db_before.iter().filter(|l| !db_after.contains(l)).collect();
    let came: Vec<&String> = db_after.iter().filter(|l| !db_before.contains(l)).collect();
    let entry = format!("/hostroot{path} ");
    assert!(
        gone.len() == 1 && came.len() == 1,
        "lines gone {gone:?}, lines new {came:?}"
    );
    assert!(
        gone[0].starts_with(&entry) && came[0].starts_with(&entry),
        "not the certificate's entry: {gone:?} -> {came:?}"
    );
    let rotated = sha512_base64(&real.root(N2).join(CA));
    assert!(
        came[0].contains(&rotated),
        "not the rotated content: {}",
        came[0]
    );
    assert_eq!(db_before.len(), db_after.len());
    assert_eq!(
        backups(real, N2),
        backups_before + 1,
        "the previous baseline kept once"
    );

    // -- 10 rotations in 60 s: all accepted, nothing re-initialised, rolled out, restarted --
    let started = Instant::now();
    for i in 0..ROTATIONS {
        let at = Duration::from_secs(6 * i as u64);
        std::thread::sleep(at.saturating_sub(started.elapsed()));
        writers.push(as_kubelet(real, &format!("ca {}", i + 2)));
        let st = status(N2);
        assert_eq!(
            st["lastResult"]["condition"], "Succeeded",
            "rotation {i}: {}",
            st["lastResult"]
        );
    }
    let last = format!("ca {}", ROTATIONS + 1);
    let want = sha512_base64(&real.root(N2).join(CA));
    let st = succeeded_until("the last rotation in the baseline", secs(90), |st| {
        db_lines(real)
            .iter()
            .any(|l| l.starts_with(&entry) && l.contains(&want))
            && status_settled(st)
    });
    let rotated_in = started.elapsed();
    let after = fixed();
    assert_eq!(after, before, "re-inits, roll-outs or restarts");
    let moved = accepted(&st)
        .iter()
        .filter(|r| r["acceptedAt"].is_string())
        .count();
    eprintln!(
        "[real nodes] expected: {ROTATIONS} rotations in {rotated_in:?}: {moved} accepted records \
         shown, {} backups, {after:?} unchanged",
        backups(real, N2) - backups_before
    );
    // Every rotation moved is in the node's kept history, however few the status shows.
    let kept = kept_history(N2);
    let moved_here = kept
        .iter()
        .filter(|r| r["by"] == format!("rule {RULE}").as_str())
        .filter(|r| {
            r["acceptedAt"]
                .as_str()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .is_some_and(|t| t >= section_start)
        })
        .count();
    assert_eq!(
        moved_here,
        backups(real, N2) - backups_before,
        "one kept record per moved baseline"
    );
    // The last content is the baseline's now: a change back from it is a change.
    assert_eq!(
        std::fs::read_to_string(real.root(N2).join(CA)).expect("read"),
        format!("{last}\n")
    );
    for mut w in writers {
        let _ = w.kill();
        let _ = w.wait();
    }

    // -- the same file written by a pod: Failed, the pod named, nothing accepted -----------
    let records_before = accepted(&status(N2)).len();
    pod_writer(&path);
    assert_eq!(condition(N2).as_deref(), Ok("Failed"));
    let st = status(N2);
    let c = listed(&st, &path).expect("listed");
    assert!(
        c["writers"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["pod"]["namespace"] == NS)),
        "{c}"
    );
    assert_eq!(
        accepted(&st).len(),
        records_before,
        "a pod's write accepted"
    );

    // -- an administrator accepts one of two changes, then the other -------------------------
    administrator(real, &path, &last);
}

/// A file added on real-2 beside the pod's change: `kubectl fio accept` of the certificate
/// leaves real-2 Failed listing only the added file; accepting that too makes it Succeeded.
/// Both records name the user the API server authenticated; an acceptance under another
/// user's name is refused by the API server.
fn administrator(real: &RealNodes, ca: &str, accepted_ca: &str) {
    let added = "/etc/fio-e2e-admin.conf";
    std::fs::write(real.root(N2).join(&added[1..]), "added by hand\n").expect("add a file");
    wait_until("both changes listed", secs(60), || {
        let st = status(N2);
        (listed(&st, ca).is_some() && listed(&st, added).is_some())
            .then_some(())
            .ok_or(format!("{}", st["lastResult"]))
    });
    let user = kubectl(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert!(!user.is_empty(), "kubectl auth whoami");

    // Under another name: refused by the API server, nothing asked.
    let forged = kubectl_try(&[
        "-n",
        NS,
        "annotate",
        "fileintegrity",
        FI,
        &format!("file-integrity.openshift.io/accept={{\"{N2}\": [\"{added}\"]}}"),
        "file-integrity.openshift.io/accept-by=someone-else",
    ])
    .expect_err("an acceptance under another user's name");
    assert!(
        forged.contains(&format!(
            "set annotation file-integrity.openshift.io/accept-by to your user name, {user}"
        )),
        "{forged}"
    );

    let plugin = plugin_dir();
    let out = kubectl_fio(&plugin, &["accept", FI, N2, ca, "-n", NS]);
    assert!(out.contains(&format!("as {user}")), "{out}");
    let st = wait_until(
        "the certificate accepted, the added file left",
        secs(90),
        || {
            let st = status(N2);
            let done = accepted(&st)
                .first()
                .is_some_and(|r| r["path"] == ca && r["acceptedAt"].is_string());
            let left: Vec<Value> = st["lastResult"]["changes"]
                .as_array()
                .map(|c| c.iter().map(|c| c["path"].clone()).collect())
                .unwrap_or_default();
            (done && left == [added])
                .then_some(st.clone())
                .ok_or(format!(
                    "listed {left:?}, records {:?}",
                    accepted(&st).first()
                ))
        },
    );
    assert_eq!(st["lastResult"]["condition"], "Failed");
    let r = &accepted(&st)[0];
    assert_eq!(r["by"], format!("administrator {user}"), "{r}");
    assert_eq!(
        std::fs::read_to_string(real.root(N2).join(&ca[1..])).expect("read"),
        format!("{accepted_ca}\nfrom a pod\n"),
        "the pod's append is what was accepted"
    );

    kubectl_fio(&plugin, &["accept", FI, N2, "--all", "-n", NS]);
    let st = wait_until("the added file accepted too", secs(90), || {
        let st = status(N2);
        let done = accepted(&st)
            .first()
            .is_some_and(|r| r["path"] == added && r["acceptedAt"].is_string());
        (done && st["lastResult"]["condition"] == "Succeeded")
            .then_some(st.clone())
            .ok_or(format!("{}", st["lastResult"]))
    });
    let r = &accepted(&st)[0];
    assert_eq!(r["kind"], "added", "{r}");
    assert_eq!(r["by"], format!("administrator {user}"), "{r}");
    let annotations = kn(&[
        "get",
        "fileintegrity",
        FI,
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(
        !annotations.contains("file-integrity.openshift.io/accept\""),
        "the acceptance annotation is removed once asked: {annotations}"
    );
    let events = kn(&[
        "get",
        "events",
        "--field-selector",
        "reason=ChangesAccepted",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains(&format!("{added} (administrator {user})")),
        "ChangesAccepted Events: {events}"
    );
}

/// The SHA-512 of a file as AIDE's database writes it (base64).
fn sha512_base64(file: &std::path::Path) -> String {
    use base64::Engine as _;
    let out = Command::new("sha512sum")
        .arg(file)
        .output()
        .expect("run sha512sum");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(bytes.len(), 64, "sha512sum {}: {text}", file.display());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// No acceptance request of real-2 waits: the FileIntegrity's newest one is completed.
fn status_settled(st: &Value) -> bool {
    let requests = kn(&[
        "get",
        "fileintegrity",
        FI,
        "-o",
        "jsonpath={.metadata.annotations.file-integrity\\.openshift\\.io/accept-requests}",
    ]);
    let newest = serde_json::from_str::<Value>(&requests)
        .ok()
        .and_then(|r| r["nodes"][N2]["id"].as_i64())
        .unwrap_or(0);
    st["acceptId"].as_i64().unwrap_or(0) >= newest
}

/// A confirmed update of real-1 (rendered-2 -> rendered-3) with realtime on: the
/// machine-config daemon's pod appends to a file of the baseline and the test writes another
/// one while scans are paused. The daemon's change is accepted per path with the update as
/// provenance and the pod as writer; the test's, named too, fails the node; no re-init, one
/// backup (the delta's). A change after the window fails the node, its writer named.
pub fn node_update(real: &RealNodes) {
    wait_condition(N1, "Succeeded", 120);
    let b1 = backups(real, N1);
    let reinit_id = status(N1)["reinitId"].clone();
    start_update("rendered-2", "rendered-3");
    // The update: the machine-config daemon's pod appends; the test writes beside it.
    let ns = fio_api::expected::MACHINE_CONFIG_DAEMON_NAMESPACE;
    let (label, value) = fio_api::expected::MACHINE_CONFIG_DAEMON_LABEL;
    let objects = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": MCD_POD, "namespace": ns, "labels": {label: value}},
         "spec": {
            "nodeName": N1,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "machine-config-daemon",
                "image": WRITER_IMAGE,
                "imagePullPolicy": "Never",
                "args": ["/host/mcd.conf", "written by the update"],
                "volumeMounts": [{"name": "file", "mountPath": "/host/mcd.conf"}]
            }],
            "volumes": [{"name": "file",
                         "hostPath": {"path": format!("/{MCD_FILE}"), "type": "File"}}]
         }}
    ]});
    // (one left by an interrupted run would not write again)
    let _ = kubectl_try(&[
        "-n",
        ns,
        "delete",
        "pod",
        MCD_POD,
        "--ignore-not-found",
        "--wait=true",
    ]);
    let file = repo_path("target/real-nodes/mcd-pod.json");
    std::fs::write(&file, objects.to_string()).expect("write the pod");
    k(&["apply", "-f", file.to_str().expect("utf-8")]);
    let mcd_file = real.root(N1).join(MCD_FILE);
    wait_until("the machine-config daemon's write", secs(90), || {
        let text = std::fs::read_to_string(&mcd_file).unwrap_or_default();
        text.contains("written by the update")
            .then_some(())
            .ok_or(text)
    });
    std::fs::write(real.root(N1).join(OTHER_FILE), "not the update's\n")
        .expect("write beside the update");
    std::thread::sleep(secs(2));
    end_update("rendered-3");
    let confirmed = Instant::now();
    let mcd = format!("/{MCD_FILE}");
    let other = format!("/{OTHER_FILE}");
    let st = wait_until("the update's change accepted", secs(120), || {
        let st = status(N1);
        let moved = accepted(&st)
            .into_iter()
            .find(|r| r["path"] == mcd.as_str() && r["acceptedAt"].is_string());
        moved.map(|r| (st.clone(), r)).ok_or(format!(
            "{} / {}",
            st["acceptedChanges"], st["lastResult"]["condition"]
        ))
    });
    let (st, record) = st;
    eprintln!(
        "[real nodes] node update: the machine-config daemon's change accepted {:?} after the \
         confirmation",
        confirmed.elapsed()
    );
    assert_eq!(
        record["by"], "node update rendered-2 -> rendered-3",
        "{record}"
    );
    assert_eq!(
        record["writers"][0]["pod"]["name"], MCD_POD,
        "the writer is the daemon's pod: {record}"
    );
    // The test's write, its writer named, is no part of the update.
    let c = listed(&st, &other)
        .cloned()
        .unwrap_or_else(|| panic!("{other} not listed: {}", st["lastResult"]));
    assert_eq!(
        st["lastResult"]["condition"], "Failed",
        "{}",
        st["lastResult"]
    );
    assert_eq!(c["writers"][0]["state"], "attributed", "{c}");
    assert!(listed(&st, &mcd).is_none(), "{}", st["lastResult"]);
    let changes = st["lastResult"]["filesAdded"].as_i64().unwrap_or(0)
        + st["lastResult"]["filesChanged"].as_i64().unwrap_or(0)
        + st["lastResult"]["filesRemoved"].as_i64().unwrap_or(0);
    assert_eq!(changes, 1, "only the test's file: {}", st["lastResult"]);
    assert_eq!(st["reinitId"], reinit_id, "no re-init");
    assert_eq!(backups(real, N1), b1 + 1, "one backup, the delta's");
    k(&["-n", ns, "delete", "pod", MCD_POD, "--wait=false"]);

    // After the window: a change fails the node, its writer named.
    std::fs::write(real.root(N1).join(AFTER_FILE), "after the update\n")
        .expect("write after the update");
    let after = format!("/{AFTER_FILE}");
    let st = wait_until("the change after the update listed", secs(60), || {
        let st = status(N1);
        listed(&st, &after)
            .filter(|c| c["writers"][0]["state"] == "attributed")
            .map(|_| st.clone())
            .ok_or(format!("{}", st["lastResult"]))
    });
    assert_eq!(st["lastResult"]["condition"], "Failed");
    // Both written files gone: back at the moved baseline.
    for f in [OTHER_FILE, AFTER_FILE] {
        std::fs::remove_file(real.root(N1).join(f)).expect("remove");
    }
    wait_condition(N1, "Succeeded", 60);
    assert_eq!(condition(N1).as_deref(), Ok("Succeeded"));
}

/// The records of `node`'s kept history (ConfigMap `aide-<fi>-<node>-accepted`), newest first.
fn kept_history(node: &str) -> Vec<Value> {
    let name = fio_api::names::accepted_configmap_name(FI, node);
    let text = kn(&[
        "get",
        "configmap",
        &name,
        "-o",
        "jsonpath={.data.accepted\\.json}",
    ]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"))
}
