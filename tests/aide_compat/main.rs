//! Acceptance tests: `fio-scanner` is a drop-in replacement for AIDE 0.18.3.
//!
//! Every test builds its own tree in a fresh temp dir (see `scenario.rs` and `tree.rs`), so they run in parallel.
//! The real `/usr/bin/aide` is required (a missing AIDE fails the tests).
//!
//! * `ours_init_then_aide_check_*`  (a): our database is accepted by AIDE as "no differences".
//! * `aide_init_then_ours_check_*`  (b): AIDE's database is accepted by us as "no differences".
//! * `same_changes_*`               (c): after the same mutations both tools report the same
//!   added / removed / changed paths, summary counts and exit code, for databases written by
//!   either tool.
//! * `beyond_aide_*`: fio-scanner must be stricter / safer than AIDE 0.18.3 (corrupt databases,
//!   killed init, the operator's AIDE-0.16 config dialect). With `FIO_SCANNER=/usr/bin/aide`
//!   (harness validation) these are expected to fail; everything else must pass:
//!   `FIO_SCANNER=/usr/bin/aide cargo test --release --test aide_compat -- --skip beyond_aide_`
//!
//! Helpers, by what they build: `tool.rs` (the two tools), `scenario.rs` (directories and
//! configurations), `tree.rs` (the tree and its mutations), `report.rs` (reports parsed),
//! `database.rs` (databases decoded).
//!
//! Paths are handled as raw bytes (`Vec<u8>`) everywhere, because the tree contains names that
//! are not UTF-8.
//!
//! Environment: `FIO_SCANNER` (binary under test), `AIDE_BIN` (reference AIDE),
//! `FIO_TEST_TMPDIR` (parent of the scenario dirs; default cargo's `CARGO_TARGET_TMPDIR`, on the
//! checkout's file system, which must support user xattrs and ACLs), `FIO_TEST_KEEP=1` (keep
//! the scenario dirs for debugging), `FIO_TEST_TIMEOUT` (seconds per tool run, default 600).
//!
//! AIDE 0.18.3 behaviour the parser relies on (verified): in plain reports, control characters
//! in names are printed as `\ooo` octal escapes (newline `\012`, tab `\011`, ESC `\033`), a
//! backslash that is followed by three octal digits is printed as `\134`, every other byte
//! (including non-UTF-8 ones and `%`, `#`, space) is printed raw.

mod database;
mod report;
mod scenario;
mod tool;
mod tree;

pub use aide::aide_bin;
use database::*;
use fio_harness::aide;
use report::*;
use scenario::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tool::*;
use tree::*;

/// The operator's default rule (`CONTENT_EX` in the FIO default aide.conf).
pub const CONTENT_EX: &str = "sha512+ftype+p+u+g+n+acl+selinux+xattrs";
/// `CONTENT_EX` plus every stat attribute except `a` and most hashes (access times change on
/// read, so `a` would make every run report changes).
pub const CONTENT_FULL: &str = "sha512+ftype+p+u+g+n+acl+selinux+xattrs+s+m+c+i+b+l+md5+sha256+sha1+rmd160+tiger+whirlpool+gost+crc32b";
/// AIDE's "every attribute" rule (as in aide-samples/full.conf) minus `a`: adds `H` (all 11
/// hashes but haval, which fio-scanner does not support), `e2fsattrs` and `caps`.
pub const ALL_BUT_ATIME: &str =
    "p+ftype+i+l+n+u+g+s+b+m+c+md5+sha1+sha256+sha512+rmd160+tiger+crc32+crc32b+whirlpool+gost+acl+selinux+xattrs+e2fsattrs+caps";

/// Size of the large file: > 64 MiB and not a multiple of AIDE's 16 MiB read block.
pub const BIG_SIZE: u64 = 64 * 1024 * 1024 + 4096 * 3 + 123;

/// Timeout for one tool invocation (seconds), `$FIO_TEST_TIMEOUT` overrides.
fn run_timeout() -> Duration {
    let secs = std::env::var("FIO_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

// ------------------------------------------------------------------------------------------
// (a) fio-scanner --init, then aide --check on the unchanged tree
// ------------------------------------------------------------------------------------------

fn ours_init_then_aide_check(name: &str, attrs: &str, gzip: bool) {
    let s = Scenario::with_tree(name);
    let db = s.init_db(Tool::Ours, attrs, gzip, "aide.db");
    let decoded = decode_db(&db).unwrap_or_else(|e| panic!("our database is not readable: {e}"));
    assert_eq!(
        decoded.gzip,
        gzip,
        "gzip_dbout={} but our database {} is {}gzip-compressed",
        if gzip { "yes" } else { "no" },
        db.display(),
        if decoded.gzip { "" } else { "not " }
    );
    assert!(
        decoded.has_end,
        "our database {} has no @@end_db line",
        db.display()
    );
    let on_disk = walk_tree(&s.root);
    assert!(
        decoded.names() == on_disk,
        "our database must contain exactly the paths of the tree\n{}",
        set_diff("our db", &decoded.names(), "tree", &on_disk)
    );

    let run = s.check(Tool::Aide, &db, attrs);
    let rep = run.report();
    assert_eq!(
        run.code,
        0,
        "aide --check of the database written by fio-scanner --init must be clean\n{}",
        run.describe()
    );
    assert!(
        rep.no_differences && !rep.found_differences,
        "aide's report must say 'AIDE found NO differences'\n{}",
        run.describe()
    );
    assert!(
        rep.different_attributes.is_empty(),
        "aide reports attribute-set differences for entries of our database: {:?}",
        rep.different_attributes
            .keys()
            .map(|k| show(k))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        rep.total_entries,
        Some(decoded.entries.len() as u64),
        "aide's 'Number of entries' differs from the number of entries in our database"
    );
}

#[test]
fn ours_init_then_aide_check_content_ex_gzip() {
    ours_init_then_aide_check("a-content", CONTENT_EX, true);
}

#[test]
fn ours_init_then_aide_check_full_rule_plain() {
    ours_init_then_aide_check("a-full", CONTENT_FULL, false);
}

#[test]
fn ours_init_then_aide_check_all_but_atime_plain() {
    ours_init_then_aide_check("a-all", ALL_BUT_ATIME, false);
}

// ------------------------------------------------------------------------------------------
// (b) aide --init, then fio-scanner --check on the unchanged tree
// ------------------------------------------------------------------------------------------

fn aide_init_then_ours_check(name: &str, attrs: &str, gzip: bool) {
    let s = Scenario::with_tree(name);
    let db = s.init_db(Tool::Aide, attrs, gzip, "aide.db");
    let decoded = decode_db(&db).expect("aide's database");

    let run = s.check(Tool::Ours, &db, attrs);
    assert_eq!(
        run.code,
        0,
        "fio-scanner --check of the database written by aide --init must be clean (exit 0)\n{}",
        run.describe()
    );
    let rep = run.report();
    assert!(
        rep.no_differences && !rep.found_differences,
        "fio-scanner's report must say 'AIDE found NO differences'\n{}",
        run.describe()
    );
    assert!(
        rep.added.is_empty() && rep.removed.is_empty() && rep.changed.is_empty(),
        "fio-scanner lists entries although it found no differences\n{}",
        run.describe()
    );
    assert_eq!(
        rep.total_entries,
        Some(decoded.entries.len() as u64),
        "fio-scanner's 'Number of entries' differs from the entries in aide's database"
    );
}

#[test]
fn aide_init_then_ours_check_content_ex_plain() {
    aide_init_then_ours_check("b-content", CONTENT_EX, false);
}

#[test]
fn aide_init_then_ours_check_full_rule_gzip() {
    aide_init_then_ours_check("b-full", CONTENT_FULL, true);
}

#[test]
fn aide_init_then_ours_check_all_but_atime_plain() {
    aide_init_then_ours_check("b-all", ALL_BUT_ATIME, false);
}

// ------------------------------------------------------------------------------------------
// (c) same mutations -> same report, databases from either tool
// ------------------------------------------------------------------------------------------

/// All differences between two reports, one per line (empty = same).
fn report_differences(a_name: &str, a: &Run, b_name: &str, b: &Run) -> Vec<String> {
    let ra = a.report();
    let rb = b.report();
    let mut d = Vec::new();
    if a.code != b.code {
        d.push(format!(
            "exit code: {a_name}={} {b_name}={}",
            a.code, b.code
        ));
    }
    for (what, x, y) in [
        ("added", ra.added_set(), rb.added_set()),
        ("removed", ra.removed_set(), rb.removed_set()),
        ("changed", ra.changed_set(), rb.changed_set()),
    ] {
        if x != y {
            d.push(format!(
                "{what} entries differ:\n{}",
                set_diff(a_name, &x, b_name, &y)
            ));
        }
    }
    for (what, x, y) in [
        (
            "'Total number of entries'",
            ra.total_entries,
            rb.total_entries,
        ),
        ("'Added entries' count", ra.added_count, rb.added_count),
        (
            "'Removed entries' count",
            ra.removed_count,
            rb.removed_count,
        ),
        (
            "'Changed entries' count",
            ra.changed_count,
            rb.changed_count,
        ),
    ] {
        if x != y {
            d.push(format!("{what}: {a_name}={x:?} {b_name}={y:?}"));
        }
    }
    if ra.no_differences != rb.no_differences || ra.found_differences != rb.found_differences {
        d.push(format!(
            "outcome line: {a_name} no_differences={} found_differences={}, {b_name} \
             no_differences={} found_differences={}",
            ra.no_differences, ra.found_differences, rb.no_differences, rb.found_differences
        ));
    }
    // Per-path summary strings (which attribute changed), for paths both list.
    for (what, x, y) in [
        ("added", &ra.added, &rb.added),
        ("removed", &ra.removed, &rb.removed),
        ("changed", &ra.changed, &rb.changed),
    ] {
        for (path, sa) in x {
            if let Some(sb) = y.get(path) {
                if sa != sb {
                    d.push(format!(
                        "{what} {}: summary {a_name}='{sa}' {b_name}='{sb}'",
                        show(path)
                    ));
                }
            }
        }
    }
    if ra.different_attributes != rb.different_attributes {
        let fmt = |m: &std::collections::BTreeMap<Vec<u8>, String>| {
            m.iter()
                .map(|(k, v)| format!("  {}: {v}", show(k)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        d.push(format!(
            "'Entry ... in databases has different attributes' lines differ:\n{a_name}:\n{}\n{b_name}:\n{}",
            fmt(&ra.different_attributes),
            fmt(&rb.different_attributes)
        ));
    }
    d
}

/// Sanity of the reference run (aide checking aide's database) against what the mutations
/// must produce: proves that the mutations happened and the report parser works.
fn assert_reference_is_sane(reference: &Run, exp: &Expected, attrs: &str) {
    let r = reference.report();
    let ctx = || reference.describe();
    assert_eq!(
        reference.code,
        7,
        "aide must report added+removed+changed (7)\n{}",
        ctx()
    );
    assert!(
        r.found_differences,
        "aide: no 'found differences' line\n{}",
        ctx()
    );
    assert!(
        r.added_set() == exp.added,
        "aide added set\n{}",
        set_diff("aide", &r.added_set(), "expected", &exp.added)
    );
    assert!(
        r.removed_set() == exp.removed,
        "aide removed set\n{}",
        set_diff("aide", &r.removed_set(), "expected", &exp.removed)
    );
    let changed = r.changed_set();
    let missing: BTreeSet<_> = exp.changed_min.difference(&changed).cloned().collect();
    assert!(
        missing.is_empty(),
        "aide did not report these as changed:\n{}\n{}",
        show_set(&missing),
        ctx()
    );
    let bogus: BTreeSet<_> = exp.unchanged.intersection(&changed).cloned().collect();
    assert!(
        bogus.is_empty(),
        "aide reported these untouched paths as changed:\n{}",
        show_set(&bogus)
    );
    let has_l = attrs.split(['+', '-']).any(|a| a == "l");
    for l in &exp.changed_with_l {
        assert_eq!(
            changed.contains(l),
            has_l,
            "symlink target change of {} must be reported iff the rule has 'l'",
            show(l)
        );
    }
    assert_eq!(
        r.added_count,
        Some(r.added.len() as u64),
        "aide 'Added entries' count"
    );
    assert_eq!(
        r.removed_count,
        Some(r.removed.len() as u64),
        "aide 'Removed entries' count"
    );
    assert_eq!(
        r.changed_count,
        Some(r.changed.len() as u64),
        "aide 'Changed entries' count"
    );
    assert_eq!(r.implied_exit_code(), reference.code);
}

fn same_changes(name: &str, attrs: &str, gzip: bool) {
    let s = Scenario::with_tree(name);
    let aide_db = s.init_db(Tool::Aide, attrs, gzip, "aide-made.db");
    let ours_db = s.init_db(Tool::Ours, attrs, gzip, "ours-made.db");

    let a = decode_db(&aide_db).expect("aide's database");
    let o = decode_db(&ours_db).unwrap_or_else(|e| panic!("our database is not readable: {e}"));
    assert!(
        a.names() == o.names(),
        "entry names of the databases written by --init differ\n{}",
        set_diff("aide db", &a.names(), "our db", &o.names())
    );

    let on_disk = walk_tree(&s.root);
    assert!(
        a.names() == on_disk,
        "harness: aide's database vs the tree\n{}",
        set_diff("aide db", &a.names(), "tree", &on_disk)
    );

    let expected = mutate_tree(&s.root);

    let mut runs = Vec::new();
    for (db_label, db) in [("aide-made db", &aide_db), ("our db", &ours_db)] {
        for tool in [Tool::Aide, Tool::Ours] {
            let run = s.check(tool, db, attrs);
            runs.push((format!("{} --check of {db_label}", tool.name()), run));
        }
    }
    let (ref_name, reference) = &runs[0];
    assert_reference_is_sane(reference, &expected, attrs);

    let mut failures = Vec::new();
    for (name, run) in &runs[1..] {
        if run.report_raw.is_none() {
            failures.push(format!("== {name}: no report written\n{}", run.describe()));
            continue;
        }
        let d = report_differences(ref_name, reference, name, run);
        if !d.is_empty() {
            failures.push(format!("== {name} vs {ref_name}:\n{}", d.join("\n")));
        }
    }
    assert!(
        failures.is_empty(),
        "reports differ after the same mutations (rule {attrs}):\n{}\n\n--- reference report \
         ({ref_name}) ---\n{}",
        failures.join("\n\n"),
        truncate(
            &String::from_utf8_lossy(reference.report_raw.as_deref().unwrap_or_default()),
            8000
        )
    );
}

#[test]
fn same_changes_content_ex_gzip() {
    same_changes("c-content", CONTENT_EX, true);
}

#[test]
fn same_changes_full_rule_plain() {
    same_changes("c-full", CONTENT_FULL, false);
}

#[test]
fn same_changes_all_but_atime_plain() {
    same_changes("c-all", ALL_BUT_ATIME, false);
}

// ------------------------------------------------------------------------------------------
// Database written by --init: same entries and values as AIDE's (precise diagnostics)
// ------------------------------------------------------------------------------------------

fn init_database_matches_aide(name: &str, attrs: &str, gzip: bool) {
    let s = Scenario::with_tree(name);
    let aide_db = s.init_db(Tool::Aide, attrs, gzip, "aide-made.db");
    let ours_db = s.init_db(Tool::Ours, attrs, gzip, "ours-made.db");
    let a = decode_db(&aide_db).expect("aide's database");
    let o = decode_db(&ours_db).unwrap_or_else(|e| panic!("our database is not readable: {e}"));

    let mut diffs = Vec::new();
    if a.spec != o.spec {
        diffs.push(format!(
            "@@db_spec: aide={:?}\n          ours={:?}",
            a.spec, o.spec
        ));
    }
    if a.names() != o.names() {
        diffs.push(format!(
            "entry names:\n{}",
            set_diff("aide db", &a.names(), "our db", &o.names())
        ));
    }
    // column -> (count, examples)
    let mut by_col: std::collections::BTreeMap<String, (usize, Vec<String>)> = Default::default();
    let am = a.by_name();
    let om = o.by_name();
    for (path, af) in &am {
        let Some(of) = om.get(path) else { continue };
        for (col, av) in af {
            let ov = of.get(col).map(String::as_str).unwrap_or("(no column)");
            if ov != av {
                let e = by_col.entry(col.clone()).or_default();
                e.0 += 1;
                if e.1.len() < 4 {
                    e.1.push(format!(
                        "    {}: aide={} ours={}",
                        show(path),
                        readable_field(col, av),
                        readable_field(col, ov)
                    ));
                }
            }
        }
    }
    for (col, (n, ex)) in &by_col {
        diffs.push(format!(
            "column {col}: {n} entries differ, e.g.\n{}",
            ex.join("\n")
        ));
    }
    let an: Vec<_> = a.entries.iter().map(|e| e.name.clone()).collect();
    let on: Vec<_> = o.entries.iter().map(|e| e.name.clone()).collect();
    if diffs.is_empty() && an != on {
        let first = an
            .iter()
            .zip(on.iter())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        diffs.push(format!(
            "entry order differs from aide's (pre-order, siblings by strcmp) at entry #{first}: \
             aide={} ours={}",
            show(an.get(first).map(|v| &v[..]).unwrap_or(b"")),
            show(on.get(first).map(|v| &v[..]).unwrap_or(b""))
        ));
    }
    assert!(
        diffs.is_empty(),
        "database written by fio-scanner --init differs from aide's (rule {attrs}):\n{}",
        diffs.join("\n")
    );
}

/// A database field with its base64 parts decoded (acl, selinux, capabilities, times).
fn readable_field(col: &str, v: &str) -> String {
    use base64::Engine as _;
    let b64 = |x: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(x)
            .map(|d| format!("{:?}", String::from_utf8_lossy(&d)))
            .unwrap_or_else(|_| x.to_string())
    };
    match col {
        "acl" if v.starts_with("POSIX,") => {
            let parts: Vec<&str> = v[6..].split(',').collect();
            let dec: Vec<String> = parts
                .iter()
                .map(|p| if *p == "0" { "0".into() } else { b64(p) })
                .collect();
            format!("{v} (= POSIX,{})", dec.join(","))
        }
        "selinux" | "capabilities" | "atime" | "mtime" | "ctime" if v != "0" => {
            format!("{v} (= {})", b64(v))
        }
        _ => v.to_string(),
    }
}

#[test]
fn init_database_matches_aide_content_ex_gzip() {
    init_database_matches_aide("db-content", CONTENT_EX, true);
}

#[test]
fn init_database_matches_aide_all_but_atime_plain() {
    init_database_matches_aide("db-all", ALL_BUT_ATIME, false);
}

// ------------------------------------------------------------------------------------------
// Corrupt / missing databases
// ------------------------------------------------------------------------------------------

/// A small scenario with a valid AIDE-written database (plain or gzip).
fn small_scenario_with_db(name: &str, gzip: bool) -> (Scenario, PathBuf) {
    let s = Scenario::empty(name);
    for i in 0..300 {
        fs::write(s.root.join(format!("file{i:03}")), format!("content {i}\n")).unwrap();
    }
    let db = s.init_db(Tool::Aide, CONTENT_EX, gzip, "aide.db");
    (s, db)
}

/// fio-scanner --check on a broken database must fail with an error (AIDE error range 14..),
/// name the database file, and must not turn the broken database into "everything added".
fn assert_check_rejects_db(s: &Scenario, db: &Path, line: Option<usize>, what: &str) -> Run {
    let run = s.check(Tool::Ours, db, CONTENT_EX);
    assert!(
        run.code >= 14,
        "{what}: fio-scanner --check must exit with an error code (>= 14), got {}\n{}",
        run.code,
        run.describe()
    );
    let out = run.all_output();
    let dbs = db.display().to_string();
    assert!(
        out.contains(&dbs),
        "{what}: the error must name the database file {dbs}\n{}",
        run.describe()
    );
    if let Some(n) = line {
        let named = out.lines().filter(|l| l.contains(&dbs)).any(|l| {
            l.contains(&format!(":{n}:"))
                || l.contains(&format!(":{n} "))
                || l.ends_with(&format!(":{n}"))
                || l.contains(&format!("line {n}"))
        });
        assert!(
            named,
            "{what}: the error must name line {n} of {dbs}\n{}",
            run.describe()
        );
    }
    if let Some(raw) = &run.report_raw {
        if let Ok(r) = Report::parse(raw) {
            assert!(
                r.added.is_empty() && r.added_count.unwrap_or(0) == 0,
                "{what}: fio-scanner reported files as added instead of failing\n{}",
                run.describe()
            );
        }
    }
    run
}

#[test]
fn missing_db_exits_18_naming_the_file() {
    let s = Scenario::empty("db-missing");
    fs::write(s.root.join("f"), "x").unwrap();
    let db = s.db("does-not-exist.db");
    let run = assert_check_rejects_db(&s, &db, None, "missing database");
    assert_eq!(
        run.code,
        18,
        "missing database_in is an I/O error (18) like aide\n{}",
        run.describe()
    );
}

#[test]
fn beyond_aide_truncated_gzip_db_is_an_error() {
    let (s, db) = small_scenario_with_db("db-trunc", true);
    let raw = fs::read(&db).unwrap();
    assert!(
        raw.starts_with(&[0x1f, 0x8b]),
        "aide did not write a gzip database"
    );
    fs::write(&db, &raw[..raw.len() / 2]).unwrap();
    assert_check_rejects_db(&s, &db, None, "truncated gzip database");
}

#[test]
fn beyond_aide_db_line_with_missing_field_is_an_error() {
    let (s, db) = small_scenario_with_db("db-badline", false);
    let text = fs::read_to_string(&db).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Drop the 3rd field (uid) of an entry line in the middle.
    let idx = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with('/'))
        .nth(150)
        .map(|(i, _)| i)
        .unwrap();
    let mut f: Vec<&str> = lines[idx].split(' ').collect();
    f.remove(2);
    lines[idx] = f.join(" ");
    fs::write(&db, lines.join("\n") + "\n").unwrap();
    assert_check_rejects_db(&s, &db, Some(idx + 1), "database line with a missing field");
}

#[test]
fn beyond_aide_empty_db_file_is_an_error() {
    let (s, db) = small_scenario_with_db("db-empty", false);
    fs::write(&db, b"").unwrap();
    assert_check_rejects_db(&s, &db, None, "empty (0-byte) database");
}

// ------------------------------------------------------------------------------------------
// database_out is replaced atomically
// ------------------------------------------------------------------------------------------

#[test]
fn beyond_aide_killed_init_leaves_no_partial_database() {
    let s = Scenario::empty("db-atomic");
    for i in 0..50 {
        fs::write(s.root.join(format!("f{i}")), format!("{i}\n")).unwrap();
    }
    // 2 GiB sparse file: hashing it takes seconds, long enough to kill the init mid-run.
    let big = s.root.join("zz-big-sparse");
    fs::File::create(&big).unwrap().set_len(2 << 30).unwrap();

    let db_in = s.db("aide.db");
    let db_out = s.db("aide.db.new");
    let old = b"@@begin_db\n# previous database, must survive a killed --init\n".to_vec();
    fs::write(&db_out, &old).unwrap();
    let spec = s.spec(&db_in, &db_out, true, CONTENT_EX);
    let (conf, _report) = s.write_config(&spec, "killed-init");

    let before: BTreeSet<_> = fs::read_dir(&s.db_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut child = std::process::Command::new(Tool::Ours.binary())
        .arg("-c")
        .arg(&conf)
        .arg("--init")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start fio-scanner");
    let seen = wait_until_file_open(&mut child, &big, Duration::from_secs(120));
    let _ = child.kill(); // SIGKILL (no-op if it already exited)
    let status = child.wait().expect("wait for fio-scanner");
    if !seen {
        // It finished (or failed) before we could catch it hashing the big file: then it must
        // have succeeded and written a complete database.
        assert!(
            status.success(),
            "fio-scanner --init exited ({status}) without ever opening {}",
            big.display()
        );
        let db = decode_db(&db_out).unwrap_or_else(|e| panic!("fio-scanner --init output: {e}"));
        assert!(
            db.has_end,
            "fio-scanner --init exited 0 but database_out is incomplete"
        );
        return;
    }
    let leftovers: Vec<_> = fs::read_dir(&s.db_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !before.contains(n))
        .collect();
    assert!(
        leftovers.is_empty(),
        "fio-scanner --init killed (SIGKILL) while hashing left files in the database directory \
         {}: {leftovers:?}. No partial file may remain (in the operator's default config the \
         database directory /etc/kubernetes is itself scanned and only `aide.*` is excluded); \
         e.g. write via O_TMPFILE and link it in only when complete",
        s.db_dir.display()
    );
    let now = fs::read(&db_out).unwrap_or_default();
    if now == old {
        return; // untouched: fine
    }
    match decode_db(&db_out) {
        Ok(db) if db.has_end => {} // a complete new database: fine
        Ok(_) | Err(_) => panic!(
            "after fio-scanner --init was killed (SIGKILL) while hashing, database_out {} is \
             neither the previous file nor a complete database ({} bytes); it must be \
             written to a temporary file and renamed",
            db_out.display(),
            now.len()
        ),
    }
}

// ------------------------------------------------------------------------------------------
// Configuration errors and the operator's default config
// ------------------------------------------------------------------------------------------

fn assert_config_error_names_line(s: &Scenario, conf: &Path, line: usize, mode: &str) {
    let run = s.run_with_config(Tool::Ours, conf, &[mode], None);
    assert_eq!(
        run.code,
        17,
        "config error must exit 17 ({mode})\n{}",
        run.describe()
    );
    let out = run.all_output();
    let cs = conf.display().to_string();
    let ok = out.lines().any(|l| {
        l.contains(&cs)
            && (l.contains(&format!("{cs}:{line}:"))
                || l.contains(&format!("{cs}:{line} "))
                || l.contains(&format!("line {line}")))
    });
    assert!(
        ok,
        "the error must name {cs} and line {line} ({mode})\n{}",
        run.describe()
    );
}

#[test]
fn unknown_attribute_in_group_exits_17_naming_file_and_line() {
    let s = Scenario::empty("conf-badattr");
    let db_out = s.db("aide.db.new");
    let conf = s.out_dir.join("bad-attr.conf");
    fs::write(
        &conf,
        format!(
            "database_in=file:{}\ndatabase_out=file:{}\n# comment\n\nCONTENT_EX = sha512+ftype+p+bogusattr+u\n{} CONTENT_EX\n",
            s.db("aide.db").display(),
            db_out.display(),
            s.root.display()
        ),
    )
    .unwrap();
    assert_config_error_names_line(&s, &conf, 5, "-D");
    assert_config_error_names_line(&s, &conf, 5, "--init");
    assert!(
        !db_out.exists(),
        "--init with a config error must not write database_out"
    );
}

#[test]
fn unknown_attribute_in_rule_exits_17_naming_file_and_line() {
    let s = Scenario::empty("conf-badrule");
    let conf = s.out_dir.join("bad-rule.conf");
    fs::write(
        &conf,
        format!(
            "database_in=file:{}\ndatabase_out=file:{}\nPERMS = p+u+g\n{} PERMS+nosuchattr\n",
            s.db("aide.db").display(),
            s.db("aide.db.new").display(),
            s.root.display()
        ),
    )
    .unwrap();
    assert_config_error_names_line(&s, &conf, 4, "--config-check");
}

/// The operator's default aide.conf (upstream-operator.md §5), `/hostroot` rewritten to
/// `<tmp>/hostroot`. `aide018` selects the AIDE 0.18 variant.
fn operator_default_config(hostroot: &Path, aide018: bool) -> String {
    let mut c = String::from(
        "@@define DBDIR /hostroot/etc/kubernetes\n@@define LOGDIR /hostroot/etc/kubernetes\n",
    );
    if aide018 {
        c.push_str("database_in=file:@@{DBDIR}/aide.db.gz\n");
    } else {
        c.push_str("database=file:@@{DBDIR}/aide.db.gz\n");
    }
    c.push_str("database_out=file:@@{DBDIR}/aide.db.gz.new\ngzip_dbout=yes\n");
    if aide018 {
        c.push_str("log_level=warning\nreport_level=changed_attributes\n");
    } else {
        c.push_str("verbose=5\n");
    }
    c.push_str("report_url=file:@@{LOGDIR}/aide.log.new\nreport_url=stdout\nPERMS = p+u+g+acl+selinux+xattrs\n");
    let g = if aide018 { "CONTENTEX" } else { "CONTENT_EX" };
    c.push_str(&format!(
        "{g} = sha512+ftype+p+u+g+n+acl+selinux+xattrs\n\n"
    ));
    c.push_str(&format!(
        "/hostroot/boot/        {g}\n/hostroot/root/\\..* PERMS\n/hostroot/root/   {g}\n!/hostroot/root/\\.kube\n!/hostroot/usr/src/\n!/hostroot/usr/tmp/\n"
    ));
    if !aide018 {
        c.push_str("\n/hostroot/usr/    CONTENT_EX\n");
    }
    c.push_str(
        "# OpenShift specific excludes
!/hostroot/opt/
!/hostroot/var
!/hostroot/etc/NetworkManager/system-connections/
!/hostroot/etc/mtab$
!/hostroot/etc/.*~
!/hostroot/etc/kubernetes/static-pod-resources
!/hostroot/etc/kubernetes/aide.*
!/hostroot/etc/kubernetes/manifests
!/hostroot/etc/kubernetes/kubelet-ca.crt
!/hostroot/etc/docker/certs.d
!/hostroot/etc/selinux/targeted
!/hostroot/etc/openvswitch/conf.db
!/hostroot/etc/kubernetes/cni/net.d
!/hostroot/etc/kubernetes/cni/net.d/*
!/hostroot/etc/machine-config-daemon/currentconfig$
!/hostroot/etc/machine-config-daemon/node-annotation.json*
!/hostroot/etc/pki/ca-trust/extracted/java/cacerts$
!/hostroot/etc/cvo/updatepayloads
!/hostroot/etc/cni/multus/certs
!/hostroot/etc/kubernetes/compliance-operator
!/hostroot/etc/kubernetes/node-feature-discovery
!/hostroot/etc/mco/internal-registry-pull-secret.json$
# Catch everything else in /etc
",
    );
    c.push_str(&format!("/hostroot/etc/    {g}"));
    c.replace("/hostroot", &hostroot.display().to_string())
}

/// A small host root the operator config applies to.
fn build_hostroot(h: &Path) {
    for d in [
        "boot/grub",
        "root/.kube",
        "root/.ssh",
        "usr/bin",
        "usr/src",
        "etc/kubernetes/manifests",
        "etc/kubernetes/static-pod-resources",
        "etc/NetworkManager/system-connections",
        "etc/machine-config-daemon",
        "etc/ssh",
        "opt/x",
        "var/log",
    ] {
        fs::create_dir_all(h.join(d)).unwrap();
    }
    for (f, c) in [
        ("boot/vmlinuz", "kernel"),
        ("boot/grub/grub.cfg", "menu"),
        ("root/.bashrc", "alias ll='ls -l'"),
        ("root/.kube/config", "excluded"),
        ("root/.ssh/authorized_keys", "ssh-ed25519 AAAA"),
        ("root/notes.txt", "notes"),
        ("usr/bin/tool", "tool"),
        ("usr/src/excluded.c", "int x;"),
        ("etc/hostname", "node-1"),
        ("etc/mtab", "excluded"),
        ("etc/passwd~", "excluded backup"),
        ("etc/ssh/sshd_config", "PermitRootLogin no"),
        ("etc/kubernetes/kubelet.conf", "kubelet"),
        ("etc/kubernetes/kubelet-ca.crt", "excluded"),
        ("etc/kubernetes/manifests/pod.yaml", "excluded"),
        ("etc/NetworkManager/system-connections/wifi", "excluded"),
        ("etc/machine-config-daemon/currentconfig", "excluded"),
        ("etc/machine-config-daemon/other", "included"),
        ("opt/x/y", "excluded"),
        ("var/log/messages", "excluded"),
    ] {
        fs::write(h.join(f), c).unwrap();
    }
}

fn config_check_operator_default(name: &str, aide018: bool) {
    let s = Scenario::empty(name);
    let hostroot = s.base.join("hostroot");
    build_hostroot(&hostroot);
    let conf = s.out_dir.join("operator-default.conf");
    fs::write(&conf, operator_default_config(&hostroot, aide018)).unwrap();
    let run = s.run_with_config(Tool::Ours, &conf, &["-D"], None);
    assert_eq!(
        run.code,
        0,
        "fio-scanner -D on the operator's default config ({} dialect) must exit 0\n{}",
        if aide018 { "AIDE 0.18" } else { "AIDE 0.16" },
        run.describe()
    );
}

#[test]
fn config_check_operator_default_aide018_dialect() {
    config_check_operator_default("conf-op018", true);
}

/// The operator ships the AIDE 0.16 dialect by default (`database=`, `verbose=5`); AIDE 0.18.3
/// rejects `verbose` (exit 17), fio-scanner must accept it.
#[test]
fn beyond_aide_config_check_operator_default_aide016_dialect() {
    config_check_operator_default("conf-op016", false);
}

/// The operator's 0.18 default config end to end: both directions are clean and both tools
/// select the same entries (negative rules, `@@define`, two report_urls).
#[test]
fn operator_default_config_roundtrip() {
    let s = Scenario::empty("op-roundtrip");
    let hostroot = s.base.join("hostroot");
    build_hostroot(&hostroot);
    let conf = s.out_dir.join("operator-default.conf");
    fs::write(&conf, operator_default_config(&hostroot, true)).unwrap();
    let dbdir = hostroot.join("etc/kubernetes");
    let db = dbdir.join("aide.db.gz");
    let db_new = dbdir.join("aide.db.gz.new");
    let log = dbdir.join("aide.log.new");

    let mut names = Vec::new();
    for (init, check) in [(Tool::Ours, Tool::Aide), (Tool::Aide, Tool::Ours)] {
        let _ = fs::remove_file(&db);
        let run = s.run_with_config(init, &conf, &["--init"], Some(log.clone()));
        run.assert_code(
            0,
            &format!("{} --init with the operator default config", init.name()),
        );
        let decoded =
            decode_db(&db_new).unwrap_or_else(|e| panic!("{} database: {e}", init.name()));
        assert!(
            decoded.gzip,
            "{} did not gzip the database (gzip_dbout=yes)",
            init.name()
        );
        names.push((init, decoded.names()));
        fs::rename(&db_new, &db).unwrap();
        let run = s.run_with_config(check, &conf, &["--check"], Some(log.clone()));
        run.assert_code(
            0,
            &format!(
                "{} --check of the database from {} --init",
                check.name(),
                init.name()
            ),
        );
        assert!(
            run.report().no_differences,
            "{} --check: report (report_url=file:) must say NO differences\n{}",
            check.name(),
            run.describe()
        );
        assert!(
            String::from_utf8_lossy(&run.stdout).contains("AIDE found NO differences"),
            "{} --check: the second report_url=stdout must get the report too\n{}",
            check.name(),
            run.describe()
        );
    }
    let (ours, aide) = (&names[0].1, &names[1].1);
    assert!(
        ours == aide,
        "selected entries differ\n{}",
        set_diff("ours", ours, "aide", aide)
    );
    for excluded in [
        "root/.kube/config",
        "etc/mtab",
        "etc/passwd~",
        "opt/x/y",
        "usr/bin/tool",
    ] {
        let p = abs(&hostroot, excluded.as_bytes());
        assert!(
            !aide.contains(&p),
            "harness: aide selected excluded {excluded}"
        );
    }
}
