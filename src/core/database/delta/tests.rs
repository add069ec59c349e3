use super::*;
use crate::attr::{Attr, AttrSet};
use crate::database::Spec;

fn entry(name: &str, size: u64, sha: u8) -> Entry {
    let mut e = Entry {
        name: name.as_bytes().to_vec(),
        attrs: AttrSet::of(&[Attr::Filename, Attr::Perm, Attr::Size, Attr::Sha256]),
        perm: 0o100644,
        size,
        ..Entry::default()
    };
    e.set_hash(Attr::Sha256, vec![sha; 32].into_boxed_slice());
    e
}

fn opts(gzip: bool) -> WriteOptions {
    WriteOptions {
        gzip,
        add_metadata: true,
        config_version: None,
        digests: AttrSet::EMPTY,
    }
}

fn baseline(dir: &Path, gzip: bool) -> std::path::PathBuf {
    let path = dir.join("aide.db.gz");
    let spec = Spec::for_attrs(AttrSet::of(&[Attr::Perm, Attr::Size, Attr::Sha256]));
    let mut w = DbWriter::create(&path, spec, &opts(gzip)).unwrap();
    for e in [
        entry("/etc", 4096, 1),
        entry("/etc/a.crt", 10, 2),
        entry("/etc/b.conf", 20, 3),
        entry("/etc/d", 4096, 4),
        entry("/etc/d/x", 30, 5),
        entry("/usr", 4096, 6),
    ] {
        w.write(&e).unwrap();
    }
    w.finish().unwrap();
    path
}

/// The entry lines of a database (decompressed), by name.
fn lines(path: &Path) -> Vec<String> {
    let mut r = DbReader::open(path, AttrSet::EMPTY).unwrap();
    let mut out = Vec::new();
    while let Some(raw) = r.next_raw().unwrap() {
        out.push(raw.line);
    }
    out
}

#[test]
fn only_the_edited_entries_differ() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [true, false] {
        let old = baseline(dir.path(), gzip);
        let new = dir.path().join("aide.db.gz.new");
        let written = apply(
            &old,
            &new,
            &opts(gzip),
            vec![
                Edit::Replace(entry("/etc/a.crt", 11, 9)),
                Edit::Add(entry("/etc/c", 1, 7)),
                Edit::Remove(b"/etc/d/x".to_vec()),
                Edit::Add(entry("/zz", 1, 8)),
            ],
        )
        .unwrap();
        let (before, after) = (lines(&old), lines(&new));
        assert_eq!(written.entries, 7);
        assert_eq!(after.len(), 7);
        let name = |l: &String| l.split(' ').next().unwrap_or_default().to_owned();
        assert_eq!(
            after.iter().map(name).collect::<Vec<_>>(),
            [
                "/etc",
                "/etc/a.crt",
                "/etc/b.conf",
                "/etc/c",
                "/etc/d",
                "/usr",
                "/zz"
            ],
            "in AIDE order"
        );
        // Every entry not edited is the same line, byte for byte.
        for l in &after {
            if !["/etc/a.crt", "/etc/c", "/zz"].contains(&name(l).as_str()) {
                assert!(before.contains(l), "{l} changed");
            }
        }
        assert!(!before.contains(&after[1]), "the replaced entry is new");
        let mut check = DbReader::open(&new, AttrSet::EMPTY).unwrap();
        let replaced = loop {
            let e = check.next_entry().unwrap().unwrap();
            if e.name == b"/etc/a.crt" {
                break e;
            }
        };
        assert_eq!(replaced, entry("/etc/a.crt", 11, 9));
        std::fs::remove_file(&new).unwrap();
    }
}

#[test]
fn an_edit_that_does_not_fit_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let old = baseline(dir.path(), true);
    let new = dir.path().join("aide.db.gz.new");
    for (edits, says) in [
        (
            vec![Edit::Replace(entry("/etc/missing", 1, 1))],
            "/etc/missing: not in the baseline",
        ),
        (
            vec![Edit::Remove(b"/zz".to_vec())],
            "/zz: not in the baseline",
        ),
        (
            vec![Edit::Add(entry("/etc/b.conf", 1, 1))],
            "/etc/b.conf: already in the baseline",
        ),
        (
            vec![
                Edit::Replace(entry("/etc/a.crt", 1, 1)),
                Edit::Remove(b"/etc/a.crt".to_vec()),
            ],
            "/etc/a.crt: two edits of one path",
        ),
    ] {
        let e = apply(&old, &new, &opts(true), edits)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(says), "{e}");
        assert!(!new.exists(), "nothing written");
    }
    // A corrupt baseline is an error, not a shorter new one.
    let bytes = std::fs::read(&old).unwrap();
    std::fs::write(&old, &bytes[..bytes.len() / 2]).unwrap();
    assert!(apply(&old, &new, &opts(true), Vec::new()).is_err());
    assert!(!new.exists());
}
