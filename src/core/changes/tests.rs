use super::*;
use crate::attr::{Attr, AttrSet};
use crate::compare::{changed_attributes, Changed, Comparison};

fn file(name: &str, perm: u32) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        perm: libc::S_IFREG | perm,
        attrs: AttrSet::of(&[
            Attr::Filename,
            Attr::Ftype,
            Attr::Perm,
            Attr::Uid,
            Attr::Size,
            Attr::Mtime,
            Attr::Ctime,
            Attr::Sha256,
        ]),
        size: 10,
        mtime: 1_765_000_000,
        ..Default::default()
    }
}

fn changed(old: Entry, new: Entry) -> Changed {
    let changed = changed_attributes(&old, &new);
    Changed { old, new, changed }
}

fn comparison() -> Comparison {
    let edited = {
        let mut old = file("/hostroot/etc/edit-me", 0o644);
        old.set_hash(Attr::Sha256, vec![0xab; 32].into());
        let mut new = old.clone();
        new.set_hash(Attr::Sha256, vec![0xcd; 32].into());
        new.size = 12;
        new.mtime = 1_765_000_060;
        new.ctime = 5;
        changed(old, new)
    };
    let chmod = {
        let old = file("/hostroot/etc/chmod-me", 0o644);
        let new = file("/hostroot/etc/chmod-me", 0o600);
        changed(old, new)
    };
    Comparison {
        total: 10,
        added: vec![file("/hostroot/etc/zz-added", 0o644)],
        removed: vec![file("/hostroot/etc/a-removed", 0o644)],
        changed: vec![edited, chmod],
    }
}

#[test]
fn every_change_is_listed_in_path_order_as_on_the_node() {
    let list = list(&comparison(), &ReportOptions::default(), b"/hostroot", 50);
    assert_eq!(list.total, 4);
    let shown: Vec<(&str, &str)> = list
        .listed
        .iter()
        .map(|c| (c.path.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("/etc/a-removed", "removed"),
            ("/etc/chmod-me", "changed"),
            ("/etc/edit-me", "changed"),
            ("/etc/zz-added", "added"),
        ]
    );
    let chmod = &list.listed[1];
    assert_eq!(chmod.attributes, ["perm"]);
    assert_eq!(
        chmod.details,
        [Detail {
            attribute: "perm",
            old: "-rw-r--r--".into(),
            new: "-rw-------".into()
        }]
    );
    let edit = &list.listed[2];
    assert_eq!(
        edit.attributes,
        ["size", "modify_time", "change_time", "sha256"]
    );
    let detail = |a: &str| {
        let d = edit.details.iter().find(|d| d.attribute == a).unwrap();
        (d.old.as_str(), d.new.as_str())
    };
    assert_eq!(detail("size"), ("10", "12"));
    assert_eq!(
        detail("modify_time"),
        ("2025-12-06T05:46:40Z", "2025-12-06T05:47:40Z")
    );
    assert_eq!(
        detail("sha256"),
        ("abababababababab...", "cdcdcdcdcdcdcdcd...")
    );
    // ctime changes with everything: named, not detailed.
    assert!(edit.details.iter().all(|d| d.attribute != "change_time"));
    assert!(list.listed[0].attributes.is_empty() && list.listed[0].details.is_empty());
}

#[test]
fn the_first_entries_are_kept_and_all_are_counted_and_digested() {
    let cmp = comparison();
    let all = list(&cmp, &ReportOptions::default(), b"/hostroot", 50);
    let two = list(&cmp, &ReportOptions::default(), b"/hostroot", 2);
    assert_eq!(two.total, 4);
    assert_eq!(two.listed, all.listed[..2]);
    assert_eq!(two.sha256, all.sha256, "the digest is of the full list");
    assert_eq!(two.sha256.len(), 64);

    let mut other = cmp.clone();
    other.added[0].name = b"/hostroot/etc/zz-other".to_vec();
    let o = list(&other, &ReportOptions::default(), b"/hostroot", 2);
    assert_eq!(o.listed, two.listed);
    assert_ne!(
        o.sha256, two.sha256,
        "a change beyond the listed ones moves the digest"
    );

    let none = list(&Comparison::default(), &ReportOptions::default(), b"", 50);
    assert_eq!((none.total, none.listed.len()), (0, 0));
}

#[test]
fn ignored_attributes_are_neither_counted_nor_shown() {
    let opts = ReportOptions {
        ignore_changed_attrs: AttrSet::of(&[Attr::Perm]),
        ..ReportOptions::default()
    };
    let l = list(&comparison(), &opts, b"/hostroot", 50);
    assert_eq!(l.total, 3, "the permission-only change is not a change");
    assert!(l.listed.iter().all(|c| c.path != "/etc/chmod-me"));
}

#[test]
fn paths_are_escaped_like_aides_report_and_valid_utf8() {
    assert_eq!(escape_path(b"/etc/new\nline"), "/etc/new\\012line");
    assert_eq!(
        escape_path(b"/etc/bad\xffname\xc3"),
        "/etc/bad\\377name\\303"
    );
    assert_eq!(escape_path("/etc/caf\u{e9}".as_bytes()), "/etc/caf\u{e9}");
    assert_eq!(escape_path(b"/etc/a\\123b"), "/etc/a\\134123b");
    assert_eq!(
        escape_path(b"/etc/unit\x1fsep\x7f"),
        "/etc/unit\\037sep\\177"
    );

    let mut cmp = Comparison::default();
    cmp.added.push(file("/hostroot/etc/new\nline", 0o644));
    let mut bad = file("/hostroot/etc/bad", 0o644);
    bad.name.push(0xff);
    cmp.added.push(bad);
    let paths: Vec<String> = list(&cmp, &ReportOptions::default(), b"/hostroot", 50)
        .listed
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(paths, ["/etc/bad\\377", "/etc/new\\012line"]);
}

#[test]
fn long_paths_are_cut_in_the_list_and_whole_in_the_digest() {
    let long = format!("/hostroot/{}", "d/".repeat(1000));
    let mut cmp = Comparison::default();
    cmp.added.push(file(&long, 0o644));
    let l = list(&cmp, &ReportOptions::default(), b"/hostroot", 50);
    assert_eq!(l.listed[0].path.len(), MAX_SHOWN_PATH + 3);
    assert!(l.listed[0].path.ends_with("..."));
    let mut other = cmp.clone();
    other.added[0].name.push(b'x');
    let o = list(&other, &ReportOptions::default(), b"/hostroot", 50);
    assert_ne!(o.sha256, l.sha256);
}

#[test]
fn names_outside_the_root_are_kept() {
    assert_eq!(on_node(b"/hostroot/etc", b"/hostroot"), b"/etc");
    assert_eq!(on_node(b"/hostroot", b"/hostroot"), b"/");
    assert_eq!(on_node(b"/hostrootx/etc", b"/hostroot"), b"/hostrootx/etc");
    assert_eq!(on_node(b"/etc", b""), b"/etc");
    let c = as_on_node(&comparison(), b"/hostroot");
    assert_eq!(c.added[0].name, b"/etc/zz-added");
    assert_eq!(c.changed[0].old.name, b"/etc/edit-me");
}

#[test]
fn shown_paths_read_back_to_their_bytes() {
    for raw in [
        &b"/etc/plain"[..],
        b"/etc/new\nline",
        b"/etc/bad\xff\xfe",
        b"/etc/back\\123slash",
        b"/etc/unit\x1fsep",
        b"/etc/tab\there",
        "/etc/caf\u{e9}".as_bytes(),
    ] {
        let shown = escape_path(raw);
        assert_eq!(unescape_path(&shown), raw, "{shown}");
    }
}
