//! Drift explained (issue 26), on the real nodes: which files changed, how, since when and on
//! which nodes, in the node statuses, the kept reports, the Events and `kubectl fio`.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{kn, wait_condition, FI, N1, N2, NS};
use fio_harness::real::{kubectl, kubectl_in_path, repo_path, wait_until, RealNodes};
use fio_harness::secs;

/// The directory of the baselined files the test changes, on both workers.
const DIR: &str = "etc/fio-e2e";
/// On real-2 after the re-init: a tree of 100,101 new entries.
const MANY_DIR: &str = "etc/fio-e2e-many";

/// The files the test changes later, in the first baseline of both workers.
pub fn seed(real: &RealNodes) {
    for node in &real.names {
        let root = real.root(node);
        let _ = std::fs::remove_dir_all(root.join(DIR));
        let _ = std::fs::remove_dir_all(root.join(MANY_DIR));
        let dir = root.join(DIR);
        std::fs::create_dir_all(&dir).expect("create the test's directory");
        for (name, text) in [
            ("remove-me", "to be removed\n"),
            ("chmod-me", "mode changes\n"),
            ("edit-me", "v1\n"),
            ("shared.conf", "v1\n"),
        ] {
            std::fs::write(dir.join(name), text).expect("write a baselined file");
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644))
                .expect("chmod 644");
        }
    }
}

pub fn status(node: &str) -> Value {
    let text = kn(&[
        "get",
        "fileintegritynodestatuses",
        &format!("{FI}-{node}"),
        "-o",
        "json",
    ]);
    serde_json::from_str(&text).expect("a node status in JSON")
}

/// `(path, field)` of each listed change of a node status's last result.
fn field_of_listed(st: &Value, field: &str) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    st["lastResult"]["changes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| (text(&c["path"]), text(&c[field])))
                .collect()
        })
        .unwrap_or_default()
}

/// `(path, kind)` of the listed changes.
fn listed(st: &Value) -> Vec<(String, String)> {
    field_of_listed(st, "kind")
}

/// path -> since of the listed changes.
fn since(st: &Value) -> BTreeMap<String, String> {
    field_of_listed(st, "since").into_iter().collect()
}

fn change<'a>(st: &'a Value, path: &str) -> &'a Value {
    st["lastResult"]["changes"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["path"] == path))
        .unwrap_or_else(|| panic!("{path} not listed: {st}"))
}

fn detail(c: &Value, attribute: &str) -> (String, String) {
    let d = c["details"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["attribute"] == attribute))
        .unwrap_or_else(|| panic!("no {attribute} detail: {c}"));
    (
        d["old"].as_str().unwrap_or_default().to_owned(),
        d["new"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The kept report's change list (AIDE's JSON report): every path it names.
fn kept_json_paths(st: &Value) -> Vec<String> {
    let cm = st["lastResult"]["resultConfigMapName"]
        .as_str()
        .expect("kept report name");
    let text = kn(&["get", "cm", cm, "-o", "jsonpath={.data.changes\\.json}"]);
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("changes.json of {cm}: {e}:\n{text}"));
    let mut paths = Vec::new();
    for key in ["added", "removed", "changed"] {
        if let Some(m) = json[key].as_object() {
            paths.extend(m.keys().cloned());
        }
    }
    paths.sort();
    paths
}

fn path(s: &str) -> (String, String) {
    let (p, k) = s.split_once(' ').expect("path kind");
    (p.to_owned(), k.to_owned())
}

/// One file added, one permission changed, one removed, one edited on real-2 only (real-1
/// scans a large tree: its scans are slow): real-2's status lists exactly those, with old ->
/// new; real-1's lists none; the kept JSON has the same four; `-o wide` shows the first path;
/// the Event names the first three. Returns real-2's status.
pub fn on_one_node(real: &RealNodes) -> Value {
    let dir = real.root(N2).join(DIR);
    std::fs::write(dir.join("added"), "new\n").expect("add a file");
    std::fs::set_permissions(dir.join("chmod-me"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod 600");
    std::fs::remove_file(dir.join("remove-me")).expect("remove a file");
    std::fs::write(dir.join("edit-me"), "version 2\n").expect("edit a file");
    wait_condition(N2, "Failed", 120);
    let st = status(N2);
    assert_eq!(
        listed(&st),
        [
            path("/etc/fio-e2e/added added"),
            path("/etc/fio-e2e/chmod-me changed"),
            path("/etc/fio-e2e/edit-me changed"),
            path("/etc/fio-e2e/remove-me removed"),
        ],
        "{st}"
    );
    let chmod = change(&st, "/etc/fio-e2e/chmod-me");
    // The access ACL follows the mode bits (AIDE reports both, as here).
    assert_eq!(
        chmod["attributes"],
        serde_json::json!(["perm", "acl"]),
        "{chmod}"
    );
    assert_eq!(
        detail(chmod, "perm"),
        ("-rw-r--r--".to_owned(), "-rw-------".to_owned())
    );
    let edit = change(&st, "/etc/fio-e2e/edit-me");
    assert_eq!(
        edit["attributes"],
        serde_json::json!(["sha512"]),
        "CONTENT_EX checks no size: {edit}"
    );
    let (old, new) = detail(edit, "sha512");
    assert!(old.len() == 19 && new.len() == 19 && old != new, "{edit}");
    assert_eq!(
        st["lastResult"]["changesSha256"].as_str().map(str::len),
        Some(64)
    );
    assert!(st["lastResult"].get("changesTruncated").is_none(), "{st}");

    let other = status(N1);
    assert_eq!(other["lastResult"]["condition"], "Succeeded");
    assert!(listed(&other).is_empty(), "{N1} lists changes: {other}");

    assert_eq!(
        kept_json_paths(&st),
        [
            "/etc/fio-e2e/added",
            "/etc/fio-e2e/chmod-me",
            "/etc/fio-e2e/edit-me",
            "/etc/fio-e2e/remove-me"
        ]
    );
    let wide = kn(&["get", "fins", &format!("{FI}-{N2}"), "-o", "wide"]);
    assert!(
        wide.lines()
            .next()
            .is_some_and(|h| h.contains("FIRST CHANGE"))
            && wide.contains("/etc/fio-e2e/added"),
        "kubectl get fins -o wide:\n{wide}"
    );
    let notes = kn(&[
        "get",
        "events",
        "--field-selector",
        "reason=NodeIntegrityStatus",
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]);
    let want =
        "changed: /etc/fio-e2e/added, /etc/fio-e2e/chmod-me, /etc/fio-e2e/edit-me, and 1 more";
    assert!(
        notes.lines().any(
            |n| n.starts_with(&format!("node {N2} has changed! a:1,c:2,r:1 log:"))
                && n.ends_with(want)
        ),
        "no Event naming the first paths:\n{notes}"
    );
    st
}

/// The plugin, as a user installs it: the binary linked as `kubectl-fio` in a directory on
/// `PATH`.
pub fn plugin_dir() -> PathBuf {
    let dir = repo_path("target/real-nodes/plugin");
    std::fs::create_dir_all(&dir).expect("create the plugin directory");
    let link = dir.join("kubectl-fio");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fio-operator"), &link)
        .expect("link kubectl-fio");
    dir
}

pub fn kubectl_fio(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["fio"];
    all.extend_from_slice(args);
    kubectl_in_path(Some(dir), &all).unwrap_or_else(|e| panic!("{e}"))
}

/// A change on both workers, and on real-2 one more of its own and two names that must be
/// escaped: the plugin groups them; the first-seen times of real-2's four changes stay over
/// three more scans. `first` is real-2's status of [`on_one_node`].
pub fn across_nodes(real: &RealNodes, first: &Value) {
    for node in [N1, N2] {
        std::fs::write(real.root(node).join(DIR).join("shared.conf"), "v2\n")
            .expect("change the shared file");
    }
    std::fs::write(
        real.root(N2).join("etc/fio-e2e-changed.conf"),
        "changed by the test\n",
    )
    .expect("change a file");
    let dir = real.root(N2).join(DIR);
    std::fs::write(dir.join("new\nline"), "x\n").expect("a name with a newline");
    let mut bad = dir.as_os_str().as_bytes().to_vec();
    bad.extend_from_slice(b"/bad\xff");
    std::fs::write(std::ffi::OsStr::from_bytes(&bad), "x\n").expect("a name that is not UTF-8");

    let before = since(first);
    let mut probes = vec![first["lastResult"]["lastProbeTime"].clone()];
    // Three later scans of real-2, each keeping the first-seen times of the four changes.
    wait_until(
        &format!("3 more scans of {N2}, first-seen times kept"),
        secs(150),
        || {
            let st = status(N2);
            let probe = st["lastResult"]["lastProbeTime"].clone();
            if !probes.contains(&probe) {
                let now = since(&st);
                for (p, t) in &before {
                    assert_eq!(now.get(p), Some(t), "first-seen time of {p} moved: {st}");
                }
                probes.push(probe);
            }
            (probes.len() > 3 && since(&st).contains_key("/etc/fio-e2e/shared.conf"))
                .then_some(())
                .ok_or(format!("{} scans", probes.len() - 1))
        },
    );
    wait_until(&format!("{N1} lists the shared change"), secs(120), || {
        let st = status(N1);
        (listed(&st) == [path("/etc/fio-e2e/shared.conf changed")])
            .then_some(())
            .ok_or(format!("{:?}", listed(&st)))
    });
    let st = status(N2);
    let paths: Vec<String> = listed(&st).into_iter().map(|(p, _)| p).collect();
    for escaped in ["/etc/fio-e2e/new\\012line", "/etc/fio-e2e/bad\\377"] {
        assert!(
            paths.iter().any(|p| p == escaped),
            "{escaped} not listed: {paths:?}"
        );
    }

    let dir = plugin_dir();
    let table = kubectl_fio(&dir, &["changes", FI, "-n", NS]);
    let row = |p: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(p))
            .unwrap_or_else(|| panic!("no row for {p}:\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("/etc/fio-e2e/shared.conf")[1..4],
        ["changed", "2/2", "real-1,real-2"],
        "{table}"
    );
    assert_eq!(
        row("/etc/fio-e2e-changed.conf")[1..4],
        ["added", "1/2", "real-2"],
        "{table}"
    );
    assert_eq!(
        row("/etc/fio-e2e/chmod-me")[1..4],
        ["changed", "1/2", "real-2"],
        "{table}"
    );
    assert!(!table.contains('\x1b'), "colour off a terminal:\n{table}");
    let json: Value =
        serde_json::from_str(&kubectl_fio(&dir, &["changes", "-o", "json", "-n", NS]))
            .expect("kubectl fio changes -o json");
    let shared = json["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["path"] == "/etc/fio-e2e/shared.conf"))
        .expect("the shared change in JSON");
    assert_eq!(
        shared["nodes"].as_array().map(Vec::len),
        Some(2),
        "{shared}"
    );
    assert_eq!(shared["ofNodes"], 2);

    // real-2's report names a file that is not UTF-8: kept compressed, not mangled, and
    // printed in clear by the plugin.
    let cm = st["lastResult"]["resultConfigMapName"]
        .as_str()
        .expect("kept report name")
        .to_owned();
    let annotations = kn(&["get", "cm", &cm, "-o", "jsonpath={.metadata.annotations}"]);
    assert!(
        annotations.contains("file-integrity.openshift.io/compressed"),
        "{cm}: {annotations}"
    );
    let report = kubectl_fio(&dir, &["report", N2, "-n", NS]);
    // AIDE's text report escapes the newline and leaves the byte 0xff as it is.
    for name in [
        "/hostroot/etc/fio-e2e-changed.conf",
        "/hostroot/etc/fio-e2e/new\\012line",
        "/hostroot/etc/fio-e2e/bad\u{fffd}",
    ] {
        assert!(
            report.contains(name),
            "report {cm} does not name {name}:\n{report}"
        );
    }
}

/// Late in the test, after re-inits at `reinit` or later: 1,000 changes on real-1 (its shared
/// file, first seen before the re-init; its directory's link count; 998 added entries) and
/// 100,101 added entries on real-2, written here and checked by [`many_checked`] (the scans
/// in between are those the test waits for anyway).
pub fn many(real: &RealNodes) {
    let dir = real.root(N1).join(DIR);
    std::fs::write(dir.join("shared.conf"), "v3\n").expect("edit a file");
    std::fs::create_dir_all(dir.join("zz-many")).expect("create zz-many/");
    for i in 0..997 {
        std::fs::write(dir.join(format!("zz-many/f{i:04}")), "x\n").expect("add a file");
    }
    let root2 = real.root(N2).join(MANY_DIR);
    for d in 0..100 {
        let sub = root2.join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub).expect("create a directory of the tree");
        for f in 0..1000 {
            std::fs::write(sub.join(format!("f{f:04}")), "").expect("add a file");
        }
    }
}

/// The changes of [`many`]: the shared file first seen anew after the re-init at `reinit`;
/// each status under 16 KiB as the API server serves it; real-2's report compressed and printed
/// in clear by `kubectl fio report`. The files are removed afterwards (the FileIntegrity goes
/// next).
pub fn many_checked(real: &RealNodes, reinit: &str) {
    let dir = real.root(N1).join(DIR);
    let root2 = real.root(N2).join(MANY_DIR);
    // The object's size as the API server serves and stores it (compact JSON, managed fields
    // included); `kubectl get -o json` indents it, which the log shows beside.
    let size = |node: &str| {
        let raw = kubectl(&[
            "get",
            "--raw",
            &format!(
                "/apis/fileintegrity.openshift.io/v1alpha1/namespaces/{NS}/fileintegritynodestatuses/{FI}-{node}"
            ),
        ])
        .len();
        let pretty = kn(&["get", "fins", &format!("{FI}-{node}"), "-o", "json"]).len();
        eprintln!("[real nodes] {node}'s status: {raw} bytes ({pretty} indented by kubectl)");
        raw
    };
    let counts = |st: &Value| {
        let n = st["lastResult"]["changes"].as_array().map_or(0, Vec::len);
        (
            n,
            st["lastResult"]["changesTruncated"].as_i64().unwrap_or(0),
        )
    };
    let st1 = wait_until(&format!("{N1} lists 1,000 changes"), secs(120), || {
        let st = status(N1);
        let total = |k: &str| st["lastResult"][k].as_i64().unwrap_or(0);
        let seen = (
            total("filesAdded"),
            total("filesChanged"),
            total("filesRemoved"),
        );
        (seen == (998, 2, 0))
            .then_some(st.clone())
            .ok_or(format!("{seen:?}"))
    });
    assert_eq!(counts(&st1), (50, 950), "{st1}");
    let bytes = size(N1);
    assert!(bytes < 16 * 1024, "{N1}'s status: {bytes} bytes");
    let edited = since(&st1)
        .get("/etc/fio-e2e/shared.conf")
        .cloned()
        .unwrap_or_else(|| panic!("shared.conf not listed: {st1}"));
    let t = |s: &str| -> k8s_openapi::jiff::Timestamp { s.parse().expect("a time") };
    assert!(
        t(&edited) > t(reinit),
        "first seen {edited}, before the re-init at {reinit}"
    );

    let st2 = wait_until(
        &format!("{N2} lists 100,101 added entries"),
        secs(240),
        || {
            let st = status(N2);
            let added = st["lastResult"]["filesAdded"].as_i64().unwrap_or(0);
            (added >= 100_101)
                .then_some(st.clone())
                .ok_or(format!("{added} added"))
        },
    );
    let total: i64 = ["filesAdded", "filesChanged", "filesRemoved"]
        .iter()
        .map(|k| st2["lastResult"][*k].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(counts(&st2), (50, total - 50), "{st2}");
    let bytes = size(N2);
    assert!(bytes < 16 * 1024, "{N2}'s status: {bytes} bytes");
    let cm = st2["lastResult"]["resultConfigMapName"]
        .as_str()
        .expect("kept report")
        .to_owned();
    let keys = kn(&["get", "cm", &cm, "-o", "jsonpath={.data}"]);
    assert!(keys.contains("changes.json"), "{cm} has no change list");
    let annotations = kn(&["get", "cm", &cm, "-o", "jsonpath={.metadata.annotations}"]);
    assert!(
        annotations.contains("file-integrity.openshift.io/compressed"),
        "{cm} is not compressed: {annotations}"
    );
    let plugin = plugin_dir();
    let text = kubectl_fio(&plugin, &["report", N2, "-n", NS]);
    assert!(
        text.contains("/hostroot/etc/fio-e2e-many/d99/f0999"),
        "kubectl fio report {N2} is not the report in clear ({} bytes)",
        text.len()
    );
    let json = kubectl_fio(&plugin, &["report", N2, "-o", "json", "-n", NS]);
    assert!(
        json.contains("\"/etc/fio-e2e-many/d99/f0999\""),
        "{} bytes",
        json.len()
    );

    let _ = std::fs::remove_dir_all(dir.join("zz-many"));
    let _ = std::fs::remove_dir_all(&root2);
}
