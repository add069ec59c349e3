//! The plugin's decisions, fed with node statuses (no cluster); `tests/real_nodes.rs` runs it
//! through kubectl on real nodes.

use super::changes::{age, group, table, Style};
use super::*;
use fio_api::{
    AttributeChange, ChangeKind, FileChange, FileIntegrityNodeStatusFields, FileIntegrityScanResult,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn change(path: &str, kind: ChangeKind, since: i64) -> FileChange {
    FileChange {
        path: path.into(),
        kind,
        attributes: if kind == ChangeKind::Changed {
            vec!["perm".into()]
        } else {
            Vec::new()
        },
        details: if kind == ChangeKind::Changed {
            vec![AttributeChange {
                attribute: "perm".into(),
                old: "-rw-r--r--".into(),
                new: "-rw-------".into(),
            }]
        } else {
            Vec::new()
        },
        since: Some(Time(at(since))),
        found_by: None,
        writers: Vec::new(),
    }
}

fn status(
    fi: &str,
    node: &str,
    changes: Vec<FileChange>,
    truncated: i64,
) -> FileIntegrityNodeStatus {
    let condition = if changes.is_empty() {
        FileIntegrityNodeCondition::Succeeded
    } else {
        FileIntegrityNodeCondition::Failed
    };
    let mut last = FileIntegrityScanResult::new(Time(at(1000)), condition);
    last.changes = changes;
    last.changes_truncated = truncated;
    let mut st = FileIntegrityNodeStatus::new(
        &format!("{fi}-{node}"),
        FileIntegrityNodeStatusFields {
            node_name: node.into(),
            results: vec![last.clone()],
            last_result: last,
            reinit_id: None,
            accept_id: None,
            accepted_changes: Vec::new(),
            baseline: None,
            result_version: None,
        },
    );
    st.labels_mut().insert(names::OWNER_LABEL.into(), fi.into());
    st
}

fn cluster() -> Vec<FileIntegrityNodeStatus> {
    vec![
        status(
            "workers",
            "node-1",
            vec![
                change("/etc/own", ChangeKind::Added, 100),
                change("/etc/shared", ChangeKind::Changed, 300),
            ],
            0,
        ),
        status(
            "workers",
            "node-2",
            vec![change("/etc/shared", ChangeKind::Changed, 200)],
            950,
        ),
        status("workers", "node-3", Vec::new(), 0),
    ]
}

#[test]
fn changes_are_grouped_by_path_with_the_nodes_that_share_them() {
    let c = group(&cluster(), None, None);
    let rows: Vec<(&str, Vec<&str>, usize, i64)> = c
        .items
        .iter()
        .map(|i| {
            (
                i.path.as_str(),
                i.nodes.iter().map(|n| n.node.as_str()).collect(),
                i.of_nodes,
                i.since.unwrap().as_second(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("/etc/own", vec!["node-1"], 3, 100),
            ("/etc/shared", vec!["node-1", "node-2"], 3, 200),
        ]
    );
    assert_eq!(c.not_listed.len(), 1);
    assert_eq!(
        (c.not_listed[0].node.as_str(), c.not_listed[0].count),
        ("node-2", 950)
    );

    let one = group(&cluster(), Some("workers"), Some("node-2"));
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].of_nodes, 1);
    assert!(group(&cluster(), Some("masters"), None).items.is_empty());
}

#[test]
fn the_table_fits_a_terminal() {
    let c = group(&cluster(), None, None);
    let plain = Style {
        colour: false,
        width: None,
        wide: false,
    };
    let text = table(&c, at(400), plain);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["PATH", "CHANGE", "NODES", "SINCE", "BY", "DETAILS"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["/etc/own", "added", "1/3", "node-1", "5m", "-"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        [
            "/etc/shared",
            "changed",
            "2/3",
            "node-1,node-2",
            "3m",
            "-",
            "perm",
            "-rw-r--r--",
            "->",
            "-rw-------"
        ]
    );
    assert!(lines[3].starts_with("node-2: 950 more changes"), "{text}");
    assert!(!text.contains('\x1b'), "no colour off a terminal");

    let tty = table(
        &c,
        at(400),
        Style {
            colour: true,
            width: Some(60),
            wide: false,
        },
    );
    assert!(tty.contains("\x1b[33mchanged\x1b[0m"), "{tty}");
    for line in tty.lines().take(3) {
        let visible = line
            .replace("\x1b[33m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "");
        assert!(visible.chars().count() <= 60, "{visible:?}");
    }

    let many: Vec<FileIntegrityNodeStatus> = (1..=12)
        .map(|i| {
            status(
                "workers",
                &format!("w{i:02}"),
                vec![change("/etc/x", ChangeKind::Added, 1)],
                0,
            )
        })
        .collect();
    let text = table(&group(&many, None, None), at(7201), plain);
    assert!(text.contains("12/12 w01,w02,w03,+9"), "{text}");
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[row.len() - 2..], ["2h", "-"], "{text}");
    assert_eq!(
        table(&group(&[], None, None), at(0), plain),
        "No changes.\n"
    );
}

#[test]
fn the_writers_are_shown_by_path() {
    use fio_api::{FoundBy, Writer, WriterPod, WriterState};
    let pod = Writer {
        state: WriterState::Attributed,
        pid: Some(4242),
        comm: "writer".into(),
        pod: Some(WriterPod {
            uid: "u".into(),
            namespace: "ns".into(),
            name: "app-1".into(),
            container: "main".into(),
            container_id: String::new(),
        }),
        ..Writer::default()
    };
    let unit = Writer {
        state: WriterState::Attributed,
        pid: Some(7),
        comm: "kubelet".into(),
        unit: "kubelet.service".into(),
        ..Writer::default()
    };
    let written = |w: Vec<Writer>| {
        let mut c = change("/etc/x", ChangeKind::Changed, 1);
        c.found_by = Some(FoundBy::Realtime);
        c.writers = w;
        c
    };
    let mut scanned = change("/etc/y", ChangeKind::Added, 1);
    scanned.found_by = Some(FoundBy::Scan);
    let statuses = vec![
        status(
            "workers",
            "w1",
            vec![written(vec![pod.clone()]), scanned],
            0,
        ),
        status("workers", "w2", vec![written(vec![unit, pod])], 0),
    ];
    let c = group(&statuses, None, None);
    let plain = Style {
        colour: false,
        width: None,
        wide: false,
    };
    let text = table(&c, at(100), plain);
    let row = |path: &str| {
        text.lines()
            .find(|l| l.starts_with(path))
            .unwrap_or_else(|| panic!("{path} in {text}"))
            .to_owned()
    };
    assert!(
        row("/etc/x").contains(
            "pod ns/app-1 (main), pid 4242 writer; unit kubelet.service, pid 7 kubelet   perm"
        ),
        "{text}"
    );
    assert!(row("/etc/y").ends_with(" scan"), "{text}");
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(
        json["items"][0]["nodes"][1]["writers"][0]["unit"],
        "kubelet.service"
    );
}

#[test]
fn ages_read_like_kubectls() {
    assert_eq!(age(at(0), at(45)), "45s");
    assert_eq!(age(at(0), at(720)), "12m");
    assert_eq!(age(at(0), at(5 * 3600)), "5h");
    assert_eq!(age(at(0), at(3 * 86_400)), "3d");
}

#[test]
fn the_command_line_is_kubectls() {
    let args = |s: &str| s.split_whitespace().map(OsString::from).collect::<Vec<_>>();
    assert_eq!(
        parse(args("changes workers --node n1 -o json -n ns --context c")),
        Ok(Command::Changes {
            fileintegrity: Some("workers".into()),
            node: Some("n1".into()),
            output: Output::Json,
            conn: Connection {
                namespace: Some("ns".into()),
                kubeconfig: None,
                context: Some("c".into()),
            },
        })
    );
    assert_eq!(
        parse(args("report n1 -o json")),
        Ok(Command::Report {
            node: "n1".into(),
            fileintegrity: None,
            json: true,
            conn: Connection::default(),
        })
    );
    assert_eq!(
        parse(args("accept workers n2 /etc/a /etc/b")),
        Ok(Command::Accept {
            fileintegrity: "workers".into(),
            node: "n2".into(),
            paths: vec!["/etc/a".into(), "/etc/b".into()],
            conn: Connection::default(),
        })
    );
    assert_eq!(
        parse(args("accept workers n2 --all")).map(|c| match c {
            Command::Accept { paths, .. } => paths,
            _ => Vec::new(),
        }),
        Ok(vec!["*".to_owned()])
    );
    assert!(parse(args("accept workers n2"))
        .unwrap_err()
        .contains("which paths"));
    assert!(parse(args("accept workers n2 /etc/a --all"))
        .unwrap_err()
        .contains("not both"));
    assert_eq!(parse(args("")), Ok(Command::Help));
    assert!(parse(args("report")).unwrap_err().contains("which node"));
    assert!(parse(args("changes -o xml")).unwrap_err().contains("xml"));
    assert!(parse(args("frobnicate"))
        .unwrap_err()
        .contains("frobnicate"));
}

#[test]
fn json_and_yaml_carry_the_same_groups() {
    let c = group(&cluster(), None, None);
    let json: serde_json::Value = serde_json::to_value(&c).unwrap();
    assert_eq!(json["items"][1]["path"], "/etc/shared");
    assert_eq!(json["items"][1]["ofNodes"], 3);
    assert_eq!(json["items"][1]["since"], "1970-01-01T00:03:20Z");
    assert_eq!(json["notListed"][0]["count"], 950);
    let yaml = serde_saphyr::to_string(&c).unwrap();
    let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, json, "{yaml}");
}
