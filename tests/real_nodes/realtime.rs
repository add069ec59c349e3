//! Realtime detection (issue 27), on the real nodes: with scans 15 minutes apart, a write to a
//! selected file is in its node's status within seconds, found by the realtime watcher and with
//! its writer named; the other node, whose root shares the filesystem, never lists it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::changes::{kubectl_fio, plugin_dir, status};
use super::{kn, wait_condition, DS, FI, N1, N2, NS};
use fio_harness::real::{wait_gone, wait_until, RealNodes, WRITER_IMAGE};
use fio_harness::secs;

/// The file written on real-2 (selected by `/etc/ CONTENT_EX`, in every baseline: see
/// [`seed`]), and its baselined content.
const FILE: &str = "etc/fio-e2e-rt.conf";
const BASELINE: &str = "baseline\n";
const WRITES: usize = 20;
/// A directory in every baseline where short-lived writers create files.
const TOUCHED: &str = "etc/fio-e2e-touch";
const TOUCHES: usize = 50;

/// The file and the directory on both workers, before their first baseline.
pub fn seed(real: &RealNodes) {
    for node in &real.names {
        std::fs::write(real.root(node).join(FILE), BASELINE).expect("write the realtime file");
        let dir = real.root(node).join(TOUCHED);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the touched directory");
    }
}

/// The listed change of `path` in a status's last result.
pub fn listed<'a>(st: &'a Value, path: &str) -> Option<&'a Value> {
    st["lastResult"]["changes"]
        .as_array()?
        .iter()
        .find(|c| c["path"] == path)
}

fn sha(st: &Value) -> String {
    st["lastResult"]["changesSha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn set_grace_period(seconds: u64) {
    kn(&[
        "patch",
        "fileintegrity",
        FI,
        "--type=merge",
        "-p",
        &format!("{{\"spec\":{{\"config\":{{\"gracePeriod\":{seconds}}}}}}}"),
    ]);
    kn(&["rollout", "status", &format!("ds/{DS}"), "--timeout=240s"]);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The whole section, with scans 15 minutes apart (set by `max_backups_pruned`, whose
/// re-inits run on request): the writes, then scans back to every 10 s.
pub fn detection(real: &RealNodes) {
    wait_condition(N2, "Succeeded", 60);
    let path = format!("/{FILE}");
    let file = real.root(N2).join(FILE);
    let before_other = sha(&status(N1));
    let me = std::process::id() as i64;

    // -- 20 writes, one every 2 s: each in the status within seconds, found by realtime --------
    let mut latencies = Vec::new();
    for i in 0..WRITES {
        let prev = sha(&status(N2));
        let started = Instant::now();
        std::fs::write(&file, format!("realtime write {i}\n")).expect("write on real-2");
        // Polled every 100 ms (not `wait_until`'s second): the figure is the latency.
        let st = loop {
            let st = status(N2);
            let seen = listed(&st, &path).is_some() && sha(&st) != prev;
            if seen {
                break st;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "write {i} not in {N2}'s status after 60 s: {}",
                st["lastResult"]
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        latencies.push(started.elapsed());
        let c = listed(&st, &path).expect("listed");
        assert_eq!(st["lastResult"]["condition"], "Failed");
        assert_eq!(c["foundBy"], "realtime", "{c}");
        let writer = &c["writers"][0];
        assert_eq!(writer["state"], "attributed", "{c}");
        assert_eq!(
            writer["pid"].as_i64(),
            Some(me),
            "this test process wrote it: {c}"
        );
        std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    }
    latencies.sort();
    let (p50, p95, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies[latencies.len() - 1],
    );
    eprintln!(
        "[real nodes] realtime: {WRITES} writes on {N2}, write -> status: p50 {p50:?}, p95 {p95:?}, max {max:?}"
    );
    assert!(
        p95 < Duration::from_secs(5),
        "p95 {p95:?} (all: {latencies:?})"
    );

    // -- coverage: everything watched, the daemon's start a closed gap ------------------------
    let st = status(N2);
    let rt = &st["lastResult"]["realtime"];
    assert_eq!(rt["state"], "Full", "{rt}");
    let start = rt["gaps"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["cause"] == "daemon started"))
        .unwrap_or_else(|| panic!("no start gap: {rt}"));
    assert!(start["to"].is_string(), "closed by the first scan: {start}");

    // -- a process placed in the kubelet's cgroup is named by its unit -----------------------
    let cgroup = real.kubelet_cgroup(N2);
    let mut sh = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for h in /sys/fs/cgroup/*/; do [ -f \"${{h}}{cgroup}/cgroup.procs\" ] && echo $$ > \"${{h}}{cgroup}/cgroup.procs\"; done; \
             echo from-the-node >> '{}'; sleep 20",
            file.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("run sh");
    let sh_pid = i64::from(sh.id());
    let st = wait_until("the node process's write named", secs(30), || {
        let st = status(N2);
        let c = listed(&st, &path).ok_or("not listed".to_owned())?;
        let named = c["writers"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["pid"].as_i64() == Some(sh_pid)));
        named.then_some(st.clone()).ok_or(format!("{c}"))
    });
    let _ = sh.kill();
    let _ = sh.wait();
    let c = listed(&st, &path).expect("listed");
    let w = c["writers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["pid"].as_i64() == Some(sh_pid)))
        .expect("the writer");
    assert_eq!(w["comm"], "sh", "{w}");
    assert_eq!(w["unit"], "kubelet.service", "the kubelet's unit: {w}");

    // -- a pod with a hostPath mount appends to the file: named by namespace, name, container -
    pod_writer(&path);

    // -- the other node, whose root is on the same filesystem, saw nothing of it --------------
    let other = status(N1);
    assert!(listed(&other, &path).is_none(), "{N1} lists {path}");
    assert_eq!(sha(&other), before_other, "{N1}'s change list moved");

    // -- a write, and the daemon killed at once: the change is reported by the restarted
    // daemon, and the time no daemon watched is a closed gap dated from the last result -------
    let last = status(N2)["lastResult"]["lastProbeTime"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let prev = sha(&status(N2));
    let pid = real.daemon_pid(N2).expect("the daemon on real-2");
    std::fs::write(&file, "written, then the daemon killed\n").expect("write on real-2");
    let written = Instant::now();
    // SAFETY: plain kill(2) of the daemon's pid.
    let killed = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(killed, 0, "kill -9 {pid}");
    let within = written.elapsed();
    assert!(
        within < Duration::from_millis(100),
        "killed {within:?} after the write"
    );
    let st = wait_until(
        "the restarted daemon's report of the write",
        secs(180),
        || {
            let st = status(N2);
            let c = listed(&st, &path).ok_or("not listed".to_owned())?;
            (sha(&st) != prev)
                .then_some(st.clone())
                .ok_or(format!("not reported yet: {c}"))
        },
    );
    let gap = st["lastResult"]["realtime"]["gaps"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["cause"] == "daemon started"))
        .cloned()
        .unwrap_or_else(|| panic!("no start gap: {}", st["lastResult"]));
    assert_eq!(
        gap["from"],
        last.as_str(),
        "dated from the last result before the kill: {gap}"
    );
    assert!(
        gap["to"].is_string(),
        "closed by the restarted daemon's scan: {gap}"
    );
    eprintln!("[real nodes] realtime: killed {within:?} after a write; reported with gap {gap}");

    // -- the file back as baselined: realtime sees the node back at its baseline --------------
    let started = Instant::now();
    std::fs::write(&file, BASELINE).expect("restore the realtime file");
    wait_condition(N2, "Succeeded", 30);
    eprintln!(
        "[real nodes] realtime: the file restored -> Succeeded after {:?}",
        started.elapsed()
    );

    // -- 50 short-lived writers: each named right or said to have exited, none misnamed ------
    short_lived(real);

    // -- writes the configuration does not select cost the daemon little, and report nothing -
    unselected(real);
}

/// The kernel's queue overflows (lowered while the daemon restarts: a group's limit is set
/// when it is made), 5,000 files created at once: a gap, a full scan, none lost. Last of the
/// sections with scans 15 minutes apart: the daemon keeps its small queue until the roll-out
/// back to scans every 10 s replaces it.
pub fn overflow_then_scans_resume(real: &RealNodes) {
    overflow(real);
    set_grace_period(10);
}

const UNSELECTED: usize = 10_000;

/// The daemon's CPU time (user + system, clock ticks of 10 ms).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the daemon's stat");
    // After the command in parentheses: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// [`UNSELECTED`] files written in the node's `/var/log` (on the marked filesystem, not in the
/// configuration): the events are dropped in user space (their directory is not in the map);
/// the figure is the daemon's CPU for them.
fn unselected(real: &RealNodes) {
    let pid = real.daemon_pid(N2).expect("the daemon on real-2");
    let before = status(N2)["lastResult"].clone();
    let dir = real.root(N2).join("var/log/fio-e2e-hot");
    std::fs::create_dir_all(&dir).expect("create the hot directory");
    let ticks = cpu_ticks(pid);
    let started = Instant::now();
    for i in 0..UNSELECTED {
        std::fs::write(dir.join(format!("l{i:05}")), b"log line\n").expect("write a log");
    }
    let wrote = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let cpu = Duration::from_millis((cpu_ticks(pid) - ticks) * 10);
    eprintln!(
        "[real nodes] realtime: {UNSELECTED} files written outside the configuration in {wrote:?}: daemon CPU {cpu:?} (events dropped in user space)"
    );
    assert_eq!(
        status(N2)["lastResult"],
        before,
        "writes outside the configuration sent a result"
    );
    assert!(
        cpu < Duration::from_secs(5),
        "the daemon spent {cpu:?} on {UNSELECTED} unselected writes"
    );
    std::fs::remove_dir_all(&dir).expect("remove the hot directory");
}

const WRITER_POD: &str = "fio-e2e-writer";

/// A pod on real-2 appending to the file through a hostPath mount of it.
pub fn pod_writer(path: &str) {
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": WRITER_POD, "namespace": NS},
        "spec": {
            "nodeName": N2,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "appender",
                "image": WRITER_IMAGE,
                "imagePullPolicy": "Never",
                "args": ["/host/rt.conf", "from a pod"],
                "volumeMounts": [{"name": "file", "mountPath": "/host/rt.conf"}]
            }],
            "volumes": [{"name": "file", "hostPath": {"path": path, "type": "File"}}]
        }
    });
    // (one left by an interrupted run would not write again)
    kn(&[
        "delete",
        "pod",
        WRITER_POD,
        "--ignore-not-found",
        "--wait=true",
    ]);
    let file = fio_harness::real::repo_path("target/real-nodes/writer-pod.json");
    std::fs::write(&file, pod.to_string()).expect("write the pod");
    kn(&["apply", "-f", file.to_str().expect("utf-8")]);
    let started = Instant::now();
    let st = wait_until("the pod's write named", secs(90), || {
        let st = status(N2);
        let c = listed(&st, path).ok_or("not listed".to_owned())?;
        let named = c["writers"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["pod"]["name"] == WRITER_POD));
        named.then_some(st.clone()).ok_or(format!("{c}"))
    });
    let c = listed(&st, path).expect("listed");
    let w = c["writers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["pod"]["name"] == WRITER_POD))
        .expect("the pod's writer");
    let uid = kn(&["get", "pod", WRITER_POD, "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(w["state"], "attributed", "{w}");
    assert_eq!(w["comm"], "writer", "{w}");
    assert_eq!(w["pod"]["namespace"], NS, "{w}");
    assert_eq!(w["pod"]["container"], "appender", "{w}");
    assert_eq!(w["pod"]["uid"], uid.as_str(), "{w}");
    // The daemon may name the pod before its kubelet has posted the container's status.
    let id = wait_until("the writer container's id in the API", secs(30), || {
        let id = kn(&[
            "get",
            "pod",
            WRITER_POD,
            "-o",
            "jsonpath={.status.containerStatuses[0].containerID}",
        ]);
        (!id.is_empty())
            .then_some(id)
            .ok_or("no container id yet".to_owned())
    });
    assert_eq!(
        Some(w["pod"]["containerId"].as_str().unwrap_or_default()),
        id.strip_prefix("containerd://"),
        "{w}"
    );
    eprintln!(
        "[real nodes] realtime: a pod's append named {} ({:?} from the pod's creation)",
        fio_api::Writer::describe(&serde_json::from_value(w.clone()).expect("a writer")),
        started.elapsed()
    );
    // What an administrator reads: `kubectl fio changes` names the pod.
    let table = kubectl_fio(&plugin_dir(), &["changes", FI, "-n", NS]);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(path))
        .unwrap_or_else(|| panic!("no row for {path}:\n{table}"));
    assert!(
        row.contains(&format!("pod {NS}/{WRITER_POD} (appender)")),
        "kubectl fio changes:\n{table}"
    );
    kn(&["delete", "pod", WRITER_POD, "--wait=false"]);
    wait_gone(
        "the writer pod",
        secs(60),
        &["-n", NS, "get", "pod", WRITER_POD],
    );
}

/// [`TOUCHES`] shells on the host, each `exec touch` of a new file in [`TOUCHED`] (in the
/// baseline) and gone at once: every listed file's writer is its own process or "exited".
fn short_lived(real: &RealNodes) {
    let dir = real.root(N2).join(TOUCHED);
    let prev = sha(&status(N2));
    let mut children = Vec::new();
    for i in 0..TOUCHES {
        let f = dir.join(format!("t{i:02}"));
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec touch '{}'", f.display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("run sh");
        children.push((format!("/{TOUCHED}/t{i:02}"), i64::from(child.id()), child));
    }
    for (_, _, c) in &mut children {
        let _ = c.wait();
    }
    // The node status shows the first changes that fit in its budget; the kept report (the
    // result ConfigMap `<result>-failed`) lists all 50, as the daemon sent them.
    let kept = format!("{DS}-{N2}-failed");
    let listed_in_kept = || -> Result<Vec<Value>, String> {
        let cm: Value = serde_json::from_str(&kn(&["get", "cm", &kept, "-o", "json"]))
            .map_err(|e| e.to_string())?;
        let text = cm["metadata"]["annotations"][fio_api::names::CHANGES_ANNOTATION]
            .as_str()
            .ok_or("no change list")?;
        let summary: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(summary["listed"].as_array().cloned().unwrap_or_default())
    };
    let all = wait_until("the touched files listed", secs(60), || {
        let st = status(N2);
        let all = listed_in_kept()?;
        let each = children
            .iter()
            .all(|(p, _, _)| all.iter().any(|c| c["path"] == p.as_str()));
        (each && sha(&st) != prev)
            .then_some(all.clone())
            .ok_or(format!("filesAdded {}", st["lastResult"]["filesAdded"]))
    });
    // Per file: named right (once or more: read at its create and again as it ended), or
    // exited before it could be read.
    let (mut right, mut exited) = (0, 0);
    for (p, pid, _) in &children {
        let c = all
            .iter()
            .find(|c| c["path"] == p.as_str())
            .expect("listed");
        assert_eq!(c["foundBy"], "realtime", "{c}");
        let writers = c["writers"]
            .as_array()
            .unwrap_or_else(|| panic!("{p}: no writer: {c}"));
        for w in writers {
            match w["state"].as_str() {
                Some("attributed") if w["pid"].as_i64() == Some(*pid) => {}
                Some("exited") => {}
                _ => panic!("{p} (made by pid {pid}) attributed wrongly: {w}"),
            }
        }
        if writers.iter().any(|w| w["state"] == "attributed") {
            right += 1;
        } else {
            exited += 1;
        }
    }
    eprintln!(
        "[real nodes] realtime: {TOUCHES} short-lived writers: {right} files named right, {exited} exited before attribution, 0 wrong"
    );
    assert_eq!(right + exited, TOUCHES, "every file has a writer");
    for (p, _, _) in &children {
        std::fs::remove_file(real.root(N2).join(p.trim_start_matches('/'))).expect("remove");
    }
    wait_condition(N2, "Succeeded", 60);
}

const QUEUE_SYSCTL: &str = "/proc/sys/fs/fanotify/max_queued_events";
const BURST: usize = 5_000;

fn overflow(real: &RealNodes) {
    let saved = std::fs::read_to_string(QUEUE_SYSCTL).expect("read max_queued_events");
    let restarts = || {
        kn(&[
            "get",
            "pods",
            &format!("-lapp={DS}"),
            "--field-selector",
            &format!("spec.nodeName={N2}"),
            "-o",
            "jsonpath={.items[0].status.containerStatuses[0].restartCount}",
        ])
    };
    let before = restarts();
    std::fs::write(QUEUE_SYSCTL, "64").expect("lower max_queued_events");
    let pid = real.daemon_pid(N2).expect("the daemon on real-2");
    // SAFETY: plain kill(2) of the daemon's pid.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    wait_until("the daemon on real-2 restarted", secs(120), || {
        let now = restarts();
        let running = real.daemon_pid(N2).is_some_and(|p| p != pid);
        (now != before && running)
            .then_some(())
            .ok_or(format!("restarts {before} -> {now}"))
    });
    // Its group is made before it hardens, at once: give it a moment, then put the limit back.
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(QUEUE_SYSCTL, saved.trim()).expect("restore max_queued_events");
    let restarted = wait_until("the restarted daemon's first result", secs(120), || {
        let st = status(N2);
        let gaps = st["lastResult"]["realtime"]["gaps"].clone();
        let closed = gaps
            .as_array()
            .and_then(|g| g.first())
            .is_some_and(|g| g["cause"] == "daemon started" && g["to"].is_string());
        closed.then_some(st).ok_or(format!("gaps {gaps}"))
    });
    let dir = real.root(N2).join("etc/fio-e2e-burst");
    std::fs::create_dir_all(&dir).expect("create the burst directory");
    for i in 0..BURST {
        std::fs::write(dir.join(format!("f{i:05}")), b"x").expect("write a burst file");
    }
    let prev = sha(&restarted);
    let st = wait_until("the burst reported after its gap", secs(120), || {
        let st = status(N2);
        let added = st["lastResult"]["filesAdded"].as_u64().unwrap_or(0);
        let gap = st["lastResult"]["realtime"]["gaps"]
            .as_array()
            .and_then(|g| g.first())
            .cloned()
            .unwrap_or_default();
        let closed = gap["cause"] == "the kernel's event queue overflowed" && gap["to"].is_string();
        (sha(&st) != prev && closed && added > BURST as u64)
            .then_some(st.clone())
            .ok_or(format!("filesAdded {added}, newest gap {gap}"))
    });
    eprintln!(
        "[real nodes] realtime: {BURST} files at once with a queue of 64: {} added, gap {}",
        st["lastResult"]["filesAdded"], st["lastResult"]["realtime"]["gaps"][0]
    );
    std::fs::remove_dir_all(&dir).expect("remove the burst");
}
