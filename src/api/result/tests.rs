use super::*;
use kube::ResourceExt;
use std::io::Read;

fn failed() -> ScanReport {
    ScanReport {
        owner: "worker-fileintegrity".into(),
        node: "node-1".into(),
        condition: ScanCondition::Failed {
            counts: FileCounts {
                added: 3,
                changed: 1,
                removed: 0,
            },
            log: Log::Text("AIDE found differences between database and filesystem!!\n".into()),
            changes: None,
        },
        reinit_id: Some(4),
        database: Some(DatabaseId {
            sha256: "ab".repeat(32),
            size: 1839782,
            entries: Some(9120),
        }),
        initialized: true,
        figures: Some(ScanFigures {
            seconds: 1.25,
            files: 9120,
        }),
        superseded: 2,
        view: Some(HostView {
            digest: "cd".repeat(32),
            covered_files: vec!["/etc/resolv.conf".into(), "/etc/hosts".into()],
        }),
        realtime: Some(crate::RealtimeCoverage {
            state: crate::CoverageState::Partial,
            reason: "/hostroot/boot: filesystem not watched".into(),
            gaps: vec![crate::RealtimeGap {
                from: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
                ),
                to: None,
                cause: "the kernel's event queue overflowed".into(),
            }],
        }),
        accepted: Some(crate::accept::Accepted {
            id: 3,
            paths: vec!["/etc/fio-test/ca.crt".into()],
        }),
    }
}

/// What a node says it accepted is read strictly too.
#[test]
fn a_malformed_or_oversized_acceptance_is_refused() {
    let cm = failed().to_config_map("openshift-file-integrity", "uid-1");
    let many = serde_json::json!({"id": 1, "paths": vec!["/x"; 51]}).to_string();
    for bad in ["{".to_owned(), r#"{"id":"x","paths":[]}"#.to_owned(), many] {
        let mut cm = cm.clone();
        cm.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(names::ACCEPTED_ANNOTATION.into(), bad.clone());
        let e = ScanReport::from_config_map(&cm).unwrap_err().to_string();
        assert!(e.contains(names::ACCEPTED_ANNOTATION), "{bad}: {e}");
    }
}

/// A node's coverage is read strictly: bounded, well-formed, or the result is refused.
#[test]
fn a_malformed_or_oversized_coverage_is_refused() {
    let mut cm = failed().to_config_map("openshift-file-integrity", "uid-1");
    let good = cm.annotations()[names::REALTIME_ANNOTATION].clone();
    for bad in [
        "{".to_owned(),
        good.replace("Partial", "Everything"),
        good.replace("overflowed", &"x".repeat(600)),
    ] {
        let mut cm = cm.clone();
        cm.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(names::REALTIME_ANNOTATION.into(), bad.clone());
        let e = ScanReport::from_config_map(&cm).expect_err(&bad);
        assert!(e.to_string().contains(names::REALTIME_ANNOTATION), "{e}");
    }
    cm.annotations_mut().remove(names::REALTIME_ANNOTATION);
    assert_eq!(ScanReport::from_config_map(&cm).unwrap().realtime, None);
}

fn round_trip(r: &ScanReport) -> ScanReport {
    let cm = r.to_config_map("openshift-file-integrity", "uid-1");
    ScanReport::from_config_map(&cm).unwrap()
}

#[test]
fn every_condition_round_trips() {
    let f = failed();
    assert_eq!(round_trip(&f), f);
    let ok = ScanReport {
        condition: ScanCondition::Succeeded,
        reinit_id: None,
        database: None,
        initialized: false,
        figures: None,
        superseded: 0,
        view: None,
        realtime: None,
        ..failed()
    };
    assert_eq!(round_trip(&ok), ok);
    let no_covered = ScanReport {
        view: Some(HostView {
            digest: "ef".repeat(32),
            covered_files: vec![],
        }),
        ..ok.clone()
    };
    assert_eq!(round_trip(&no_covered), no_covered);
    for exit in [Some(Exit::Io), Some(Exit::InvalidConfig), None] {
        let err = ScanReport {
            condition: ScanCondition::Errored {
                exit,
                message: "AIDE error: 18 IO error: /hostroot/etc/kubernetes/aide.db.gz".into(),
            },
            ..failed()
        };
        assert_eq!(round_trip(&err), err);
    }
    let zipped = ScanReport {
        condition: ScanCondition::Failed {
            counts: FileCounts::default(),
            log: Log::pack(b"report", "node-1", true),
            changes: None,
        },
        ..failed()
    };
    assert_eq!(round_trip(&zipped), zipped);
}

#[test]
fn the_wire_form_is_upstreams() {
    let cm = failed().to_config_map("ns", "uid-1");
    assert_eq!(
        cm.metadata.name.as_deref(),
        Some("aide-worker-fileintegrity-node-1")
    );
    let labels = cm.metadata.labels.clone().unwrap();
    assert_eq!(labels[names::OWNER_LABEL], "worker-fileintegrity");
    assert_eq!(labels[names::NODE_LABEL], "node-1");
    assert_eq!(labels[names::LOG_LABEL], "");
    let ann = cm.metadata.annotations.clone().unwrap();
    assert_eq!(ann[names::FILES_ADDED_ANNOTATION], "3");
    assert_eq!(ann[names::FILES_CHANGED_ANNOTATION], "1");
    assert_eq!(ann[names::FILES_REMOVED_ANNOTATION], "0");
    assert!(!ann.contains_key(names::COMPRESSED_ANNOTATION));
    assert!(cm.data.unwrap()[names::INTEGRITY_LOG_KEY].starts_with("AIDE found"));
    let owner = &cm.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("FileIntegrity", "uid-1")
    );
}

/// Set one annotation of a well-formed Failed report to `value` and read it back.
fn with_annotation(key: &str, value: Option<&str>) -> Result<ScanReport, ContractError> {
    let mut cm = failed().to_config_map("ns", "uid");
    let ann = cm.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match value {
        Some(v) => ann.insert(key.to_owned(), v.to_owned()),
        None => ann.remove(key),
    };
    ScanReport::from_config_map(&cm)
}

#[test]
fn malformed_numbers_are_errors_naming_the_annotation() {
    for key in [
        names::FILES_ADDED_ANNOTATION,
        names::FILES_CHANGED_ANNOTATION,
        names::FILES_REMOVED_ANNOTATION,
        names::REINIT_ID_ANNOTATION,
        names::DB_SIZE_ANNOTATION,
        names::DB_ENTRIES_ANNOTATION,
        names::FILES_SCANNED_ANNOTATION,
    ] {
        for bad in ["", "-1", "abc", " 3", "+3", "1e3", "99999999999999999999"] {
            let e = with_annotation(key, Some(bad)).unwrap_err();
            assert!(
                matches!(&e, ContractError::Field { annotation, .. } if *annotation == key),
                "{key}={bad:?}: {e}"
            );
            assert!(e.to_string().contains(key), "{e}");
        }
    }
    let e = with_annotation(names::REINIT_ID_ANNOTATION, Some(&u64::MAX.to_string()));
    assert!(e.is_err());
    for bad in ["-1", "NaN", "inf", "x"] {
        assert!(
            with_annotation(names::SCAN_SECONDS_ANNOTATION, Some(bad)).is_err(),
            "{bad}"
        );
    }
    for bad in ["", "-1", "two"] {
        let e = with_annotation(names::RESULTS_SUPERSEDED_ANNOTATION, Some(bad)).unwrap_err();
        assert!(
            e.to_string().contains(names::RESULTS_SUPERSEDED_ANNOTATION),
            "{e}"
        );
    }
    for bad in ["AB".repeat(32), "ab".repeat(31), "zz".repeat(32)] {
        assert!(
            with_annotation(names::DB_SHA256_ANNOTATION, Some(&bad)).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn missing_parts_are_errors_not_zeros() {
    for key in [
        names::FILES_ADDED_ANNOTATION,
        names::FILES_CHANGED_ANNOTATION,
        names::FILES_REMOVED_ANNOTATION,
        names::DB_SIZE_ANNOTATION,
        names::FILES_SCANNED_ANNOTATION,
        names::SCAN_SECONDS_ANNOTATION,
    ] {
        let e = with_annotation(key, None).unwrap_err();
        assert!(
            matches!(e, ContractError::Missing { annotation, .. } if annotation == key),
            "{e}"
        );
    }
    let mut cm = failed().to_config_map("ns", "uid");
    cm.metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(names::NODE_LABEL);
    assert_eq!(
        ScanReport::from_config_map(&cm),
        Err(ContractError::MissingLabel {
            cm: "aide-worker-fileintegrity-node-1".into(),
            label: names::NODE_LABEL
        })
    );
    // An error and a report at once: which one is the verdict?
    let e = with_annotation(names::LOG_ERROR_ANNOTATION, Some("AIDE error")).unwrap_err();
    assert!(matches!(e, ContractError::Ambiguous { .. }), "{e}");
}

#[test]
fn exit_codes_of_errors_must_be_aide_error_statuses() {
    let errored = |code: &str| {
        let mut cm = ScanReport {
            condition: ScanCondition::Errored {
                exit: None,
                message: "AIDE error".into(),
            },
            ..failed()
        }
        .to_config_map("ns", "uid");
        cm.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(names::EXIT_CODE_ANNOTATION.into(), code.into());
        ScanReport::from_config_map(&cm)
    };
    assert!(matches!(
        errored("18").unwrap().condition,
        ScanCondition::Errored {
            exit: Some(Exit::Io),
            ..
        }
    ));
    for bad in ["0", "7", "13", "22", "300", "x"] {
        assert!(errored(bad).is_err(), "{bad}");
    }
}

#[test]
fn small_logs_stay_text_large_ones_are_gzip_base64() {
    let small = b"AIDE found differences between database and filesystem!!\n";
    assert_eq!(
        Log::pack(small, "node-1", false),
        Log::Text(String::from_utf8_lossy(small).into_owned())
    );

    // 20,000 added entries, as upstream's e2e test: well over 1 MiB of report.
    let mut big = Vec::new();
    for i in 0..20_000 {
        big.extend_from_slice(
            format!(
                "f+++++++++++++++++: /hostroot/etc/addedbytest{i}.{}\n",
                "x".repeat(40)
            )
            .as_bytes(),
        );
    }
    assert!(big.len() > CONFIGMAP_MAX);
    let Log::Compressed(data) = Log::pack(&big, "node-1", false) else {
        panic!("not compressed")
    };
    assert!(data.len() <= CONFIGMAP_MAX);
    let zipped = base64::engine::general_purpose::STANDARD
        .decode(&data)
        .unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, big);
}

/// `n` random-looking (incompressible) bytes (xorshift).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 88172645463325252;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn incompressible_huge_logs_become_a_placeholder() {
    // Random-looking bytes do not compress: 2 MiB of them cannot fit even gzip'd.
    let noise = noise(2 * 1024 * 1024);
    let Log::Compressed(data) = Log::pack(&noise, "node-2", false) else {
        panic!("not compressed")
    };
    assert!(
        data.contains("fetch it from /etc/kubernetes/aide.log on node node-2"),
        "{data}"
    );
}

#[test]
fn a_failure_without_a_report_still_carries_one() {
    let v = Verdict::Failed {
        added: 1,
        removed: 0,
        changed: 0,
        log: Vec::new(),
        changes: Box::default(),
        changes_json: Vec::new(),
    };
    let ScanCondition::Failed { log, counts, .. } = ScanCondition::from_verdict(&v, "n", false)
    else {
        panic!()
    };
    assert_eq!(counts.added, 1);
    assert!(log.data().contains("no report_url=file"), "{}", log.data());
}

#[test]
fn the_view_must_be_a_digest_and_a_bounded_list() {
    let e = with_annotation(names::MOUNTS_SHA256_ANNOTATION, Some("abc")).unwrap_err();
    assert!(
        e.to_string().contains(names::MOUNTS_SHA256_ANNOTATION),
        "{e}"
    );
    let e = with_annotation(names::MOUNTS_SHA256_ANNOTATION, None).unwrap_err();
    assert!(
        matches!(e, ContractError::Missing { annotation, .. } if annotation == names::MOUNTS_SHA256_ANNOTATION),
        "{e}"
    );
    let many = vec!["/etc/x"; MAX_COVERED_LINES + 1].join("\n");
    let e = with_annotation(names::COVERED_FILES_ANNOTATION, Some(&many)).unwrap_err();
    assert!(
        e.to_string().contains(names::COVERED_FILES_ANNOTATION),
        "{e}"
    );
    let long = "/".repeat(MAX_COVERED_LINE + 1);
    assert!(with_annotation(names::COVERED_FILES_ANNOTATION, Some(&long)).is_err());
    let most = vec!["/etc/x"; MAX_COVERED_LINES].join("\n");
    let r = with_annotation(names::COVERED_FILES_ANNOTATION, Some(&most)).unwrap();
    assert_eq!(
        r.view.map(|v| v.covered_files.len()),
        Some(MAX_COVERED_LINES)
    );
}

fn summary(total: u64, paths: &[&str]) -> ChangeSummary {
    ChangeSummary {
        total,
        sha256: "ab".repeat(32),
        listed: paths
            .iter()
            .map(|p| crate::FileChange {
                path: (*p).to_owned(),
                kind: crate::ChangeKind::Added,
                attributes: Vec::new(),
                details: Vec::new(),
                since: None,
                found_by: None,
                writers: Vec::new(),
            })
            .collect(),
    }
}

fn with_changes(summary: ChangeSummary, json: Option<&str>) -> ScanReport {
    ScanReport {
        condition: ScanCondition::Failed {
            counts: FileCounts {
                added: 3,
                changed: 1,
                removed: 0,
            },
            log: Log::Text("report".into()),
            changes: Some(Changes {
                summary,
                json: json.map(str::to_owned),
            }),
        },
        ..failed()
    }
}

#[test]
fn changes_travel_beside_the_report() {
    let r = with_changes(summary(4, &["/etc/a", "/etc/b"]), Some("{}\n"));
    let cm = r.to_config_map("ns", "uid");
    let data = cm.data.as_ref().unwrap();
    assert_eq!(data[names::CHANGES_JSON_KEY], "{}\n");
    assert!(cm.annotations()[names::CHANGES_ANNOTATION].contains("/etc/b"));
    assert_eq!(round_trip(&r), r);
    assert!(!decided_by_annotations(cm.annotations()));
}

#[test]
fn a_malformed_change_summary_is_named() {
    let long = "/".repeat(2000);
    let mut bad_sha = summary(4, &[]);
    bad_sha.sha256 = "XY".into();
    let mut since = summary(4, &["/etc/a"]);
    since.listed[0].since = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-01T00:00:00Z".parse().unwrap(),
    ));
    for (s, why) in [
        (summary(5, &[]), "total differs"),
        (summary(4, &["/a"; 5]), "more listed"),
        (summary(4, &[long.as_str()]), "exceeds its bounds"),
        (bad_sha, "sha256"),
        (since, "exceeds its bounds"),
    ] {
        let cm = with_changes(s, None).to_config_map("ns", "uid");
        let err = ScanReport::from_config_map(&cm).unwrap_err().to_string();
        assert!(
            err.contains(names::CHANGES_ANNOTATION) && err.contains(why),
            "{err}"
        );
    }
    let mut cm = with_changes(summary(4, &[]), None).to_config_map("ns", "uid");
    cm.annotations_mut()
        .insert(names::CHANGES_ANNOTATION.into(), "{\"total\": 4}".into());
    let err = ScanReport::from_config_map(&cm).unwrap_err().to_string();
    assert!(err.contains("not a change summary"), "{err}");
    cm.annotations_mut().insert(
        names::CHANGES_ANNOTATION.into(),
        "x".repeat(MAX_CHANGES_ANNOTATION + 1),
    );
    let err = ScanReport::from_config_map(&cm).unwrap_err().to_string();
    assert!(err.contains("longer than 128 KiB"), "{err}");
}

#[test]
fn changes_without_a_failure_are_malformed() {
    let mut cm = ScanReport {
        condition: ScanCondition::Succeeded,
        ..failed()
    }
    .to_config_map("ns", "uid");
    cm.annotations_mut()
        .insert(names::CHANGES_ANNOTATION.into(), "{}".into());
    let err = ScanReport::from_config_map(&cm).unwrap_err().to_string();
    assert!(err.contains("changes without a report"), "{err}");
}

#[test]
fn report_and_change_list_are_packed_together() {
    let (log, json) = Log::pack_with(b"report", b"{}", "n", false);
    assert_eq!(
        (log, json.as_deref()),
        (Log::Text("report".into()), Some("{}"))
    );

    // A name that is not UTF-8: both compressed, nothing mangled.
    let (log, json) = Log::pack_with(b"report \xff", b"{\"\xff\"}", "n", false);
    let unpack = |s: &str| {
        let raw = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    let Log::Compressed(l) = log else {
        panic!("{log:?}")
    };
    assert_eq!(unpack(&l), b"report \xff");
    assert_eq!(unpack(&json.unwrap()), b"{\"\xff\"}");

    // Together too large as text: both compressed.
    let big = vec![b'a'; CONFIGMAP_MAX];
    let (log, json) = Log::pack_with(&big, &big, "n", false);
    assert!(matches!(log, Log::Compressed(_)) && json.is_some());

    // The list does not fit beside the report: the report wins.
    let noise = noise(800_000);
    let (log, json) = Log::pack_with(b"report", &noise, "n", true);
    assert!(matches!(log, Log::Compressed(_)));
    assert!(json.is_none());
}
