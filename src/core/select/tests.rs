use super::*;
use crate::attr::Attr;
use std::collections::BTreeMap;

fn p() -> AttrSet {
    AttrSet::of(&[Attr::Perm])
}

fn build(rules: &[(RuleKind, &str, &str, AttrSet)]) -> RuleSet {
    let mut b = RuleSetBuilder::new();
    for (i, (k, rx, rs, a)) in rules.iter().enumerate() {
        let mut r = Restriction::NONE;
        for c in rs.bytes().filter(|c| *c != b',') {
            r = r.union(Restriction::from_letter(c).unwrap());
        }
        b.add(*k, rx.as_bytes(), r, *a, "test", i + 1, rx).unwrap();
    }
    b.build()
}

use RuleKind::*;
use Selection::*;

fn rec(a: AttrSet) -> Selection {
    Record {
        attrs: a,
        recurse: true,
    }
}

#[test]
fn strrxtok_like_aide() {
    assert_eq!(strrxtok(b"/usr/lib/foo$"), b"/usr/lib");
    assert_eq!(strrxtok(b"/foo"), b"/");
    assert_eq!(strrxtok(b"/"), b"/");
    assert_eq!(strrxtok(b"/foo/"), b"/foo");
    assert_eq!(strrxtok(b"/etc/.*\\.conf"), b"/etc");
    assert_eq!(strrxtok(b"/home/.+/x"), b"/home/.+");
    assert_eq!(strrxtok(b"/foo\\.d/x"), b"/foo.d");
    assert_eq!(strrxtok(b"/a(b)/c"), b"/");
    assert_eq!(strgetndirname(b"/usr/lib/x", 2), b"/usr");
    assert_eq!(strgetndirname(b"/usr", 2), b"/usr");
    assert_eq!(strlastslash(b"/usr"), b"/");
    assert_eq!(strlastslash(b"/usr/lib"), b"/usr");
}

#[test]
fn pcre_translation() {
    let m = |rx: &str, s: &[u8]| {
        let r = Regex::new(rx.as_bytes()).unwrap();
        let mut c = r.create_cache();
        r.match_anchored(&mut c, s)
    };
    use MatchResult as M;
    assert_eq!(m("/foo", b"/foobar"), M::Full);
    assert_eq!(m("/foo$", b"/foobar"), M::None);
    assert_eq!(m("/foo$", b"/foo"), M::Full);
    assert_eq!(m("/foo$", b"/foo\n"), M::Full);
    assert_eq!(m("/usr/lib/foo$", b"/usr/li"), M::Partial);
    assert_eq!(m("/x/.$", b"/x/\xff"), M::Full);
    assert_eq!(m("/x/..$", "/x/é".as_bytes()), M::Full);
    assert_eq!(m("/x/[é]$", b"/x/\xc3"), M::Full);
    assert_eq!(m("/x/\\xff$", b"/x/\xff"), M::Full);
    assert_eq!(m("/a{2}", b"/aa"), M::Full);
    assert_eq!(m("/a{x}", b"/a{x}"), M::Full);
    assert_eq!(m("/a{,2}", b"/a{,2}"), M::Full);
    assert_eq!(m("/[]a]", b"/]"), M::Full);
    assert_eq!(m("/[a&&b]", b"/&"), M::Full);
    assert_eq!(m("/[[]", b"/["), M::Full);
    assert_eq!(m("/[[:digit:]]+$", b"/123"), M::Full);
    assert_eq!(m("/\\w+$", "/é".as_bytes()), M::None);
    assert_eq!(m("(?i)/ETC", b"/etc"), M::Full);
    assert_eq!(m("/a#b c", b"/a#b c"), M::Full);
    assert_eq!(m("/(?<n>x)y", b"/xy"), M::Full);
    assert!(Regex::new(b"/(?=x)").is_err());
    assert!(Regex::new(b"/(a)\\1").is_err());
    assert!(Regex::new(b"/a++").is_err());
    assert!(Regex::new(b"/\\x{100}").is_err());
    assert!(Regex::new(b"/[z-a]").is_err());
    assert!(Regex::new(b"/(").is_err());
}

#[test]
fn selective_equals_negative() {
    let r = p();
    let rs = build(&[
        (Selective, "/etc", "", r),
        (Equals, "/var/log/", "", r),
        (Negative, "/etc/skip$", "", r),
        (Negative, "/etc/nodirs", "d", r),
        (Selective, "/usr/lib/foo$", "", r),
    ]);
    assert_eq!(rs.select(b"/", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/etc", FileType::Directory), rec(r));
    assert_eq!(rs.select(b"/etcx", FileType::Regular), rec(r));
    assert_eq!(rs.select(b"/etc/skip", FileType::Directory), Skip);
    assert_eq!(rs.select(b"/etc/skip/x", FileType::Regular), Skip);
    assert_eq!(rs.select(b"/etc/skipx", FileType::Regular), rec(r));
    assert_eq!(rs.select(b"/etc/nodirs", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/etc/nodirs/f", FileType::Regular), rec(r));
    assert_eq!(rs.select(b"/etc/nodirs/d", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/var", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/var/log", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/var/log/syslog", FileType::Regular), rec(r));
    assert_eq!(rs.select(b"/var/log/apt", FileType::Directory), rec(r));
    assert_eq!(rs.select(b"/var/log/apt/x", FileType::Regular), Skip);
    assert_eq!(rs.select(b"/usr", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/usr/lib", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/usr/lib/foo", FileType::Regular), rec(r));
    assert_eq!(rs.select(b"/usr/lib/bar", FileType::Directory), Skip);
    assert_eq!(rs.select(b"/opt", FileType::Directory), Skip);
    assert!(!rs.is_empty());
    assert_eq!(rs.db_out_attrs(), r);
}

#[test]
fn restriction_mismatch_is_partial() {
    let r = p();
    let rs = build(&[(Selective, "/data", "f", r)]);
    assert_eq!(rs.select(b"/data", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/data/x", FileType::Regular), rec(r));
    assert_eq!(rs.select(b"/data/l", FileType::Symlink), Skip);
}

#[test]
fn deeper_selective_wins() {
    let a = p();
    let b = AttrSet::of(&[Attr::Uid]);
    let rs = build(&[(Selective, "/", "", a), (Selective, "/etc/", "", b)]);
    assert_eq!(rs.select(b"/etc/passwd", FileType::Regular), rec(b));
    assert_eq!(rs.select(b"/etc", FileType::Directory), rec(a));
    assert_eq!(rs.select(b"/", FileType::Directory), rec(a));
}

#[test]
fn empty_ruleset() {
    let rs = RuleSet::default();
    assert!(rs.is_empty());
    assert_eq!(rs.select(b"/", FileType::Directory), Descend);
    assert_eq!(rs.select(b"/etc", FileType::Directory), Skip);
}

#[test]
fn send_sync_and_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RuleSet>();
    let rs = build(&[(Selective, "/etc", "", p())]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let rs = rs.clone();
            s.spawn(move || {
                for _ in 0..1000 {
                    assert_eq!(rs.select(b"/etc/x", FileType::Regular), rec(p()));
                }
            });
        }
    });
}

// -----------------------------------------------------------------------------------------
// Comparison with the real aide.

/// The tests compare with Debian's aide: missing is a failure, not a skip.
pub(crate) fn require_aide() {
    assert!(
        std::path::Path::new("/usr/bin/aide").exists(),
        "/usr/bin/aide not found: install Debian's aide (apt-get install aide)"
    );
}

fn decode_name(s: &[u8]) -> Vec<u8> {
    crate::database::encode::unescape(std::str::from_utf8(s).expect("AIDE writes ASCII names"))
}

/// Runs `aide --init` with `conf_body` on `root` and returns name -> attr column.
pub(crate) fn aide_init(root: &std::path::Path, conf_body: &str) -> BTreeMap<Vec<u8>, u64> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.db");
    let conf = dir.path().join("aide.conf");
    let text = format!(
        "database_out=file:{}\ngzip_dbout=no\ndatabase_add_metadata=no\nreport_url=stdout\nreport_level=minimal\n{}",
        db.display(),
        conf_body
    );
    std::fs::write(&conf, text).unwrap();
    let out = std::process::Command::new("/usr/bin/aide")
        .arg("--init")
        .arg("-c")
        .arg(&conf)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aide failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&db).unwrap();
    let mut lines = data.split(|&b| b == b'\n');
    let spec: Vec<&[u8]> = lines
        .by_ref()
        .find(|l| l.starts_with(b"@@db_spec"))
        .unwrap()
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .collect();
    let attr_col = spec.iter().position(|f| *f == b"attr").unwrap() - 1;
    let mut map = BTreeMap::new();
    for l in lines {
        if !l.starts_with(b"/") {
            continue;
        }
        let fields: Vec<&[u8]> = l.split(|&b| b == b' ').collect();
        let attr: u64 = std::str::from_utf8(fields[attr_col])
            .unwrap()
            .parse()
            .unwrap();
        map.insert(decode_name(fields[0]), attr);
    }
    let _ = root;
    map
}

/// Walks `root` like AIDE's scan and returns name -> rule attributes.
pub(crate) fn walk(rs: &RuleSet, root: &std::path::Path) -> BTreeMap<Vec<u8>, AttrSet> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    fn ft(m: &std::fs::Metadata) -> FileType {
        FileType::from_mode(m.mode())
    }
    let mut out = BTreeMap::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let root_md = std::fs::symlink_metadata("/").unwrap();
    if let Record { attrs, .. } = rs.select(b"/", ft(&root_md)) {
        out.insert(b"/".to_vec(), attrs);
    }
    // Only walk the part of the tree that contains `root` (the walk from `/` of the real
    // file system would take too long): directories above `root` are walked selectively.
    let root_bytes = root.as_os_str().as_bytes().to_vec();
    stack.push(b"/".to_vec());
    while let Some(dir) = stack.pop() {
        let inside = dir.starts_with(&root_bytes);
        let rd = match std::fs::read_dir(std::ffi::OsStr::from_bytes(&dir)) {
            Ok(rd) => rd,
            Err(_) => continue,
        };
        for e in rd.flatten() {
            let mut name = dir.clone();
            if name != b"/" {
                name.push(b'/');
            }
            name.extend_from_slice(e.file_name().as_bytes());
            let on_way = root_bytes.starts_with(&name) && root_bytes.get(name.len()) == Some(&b'/')
                || name == root_bytes;
            if !inside && !on_way {
                continue;
            }
            let md = std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(&name)).unwrap();
            let sel = rs.select(&name, ft(&md));
            let walk_into = match sel {
                Record { attrs, recurse } => {
                    if inside || name == root_bytes {
                        out.insert(name.clone(), attrs);
                    }
                    recurse
                }
                Descend => true,
                Skip => false,
            };
            if walk_into && md.is_dir() {
                stack.push(name);
            }
        }
    }
    out
}

#[test]
fn same_selection_as_aide() {
    require_aide();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let mk = |rel: &str| std::fs::create_dir_all(root.join(rel)).unwrap();
    let touch = |rel: &[u8]| {
        use std::os::unix::ffi::OsStrExt;
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(rel)), b"x").unwrap()
    };
    for d in [
        "etc/skip/sub",
        "etc/nodirs/sub",
        "etc/.d/x",
        "var/log/apt",
        "usr/lib/foo",
        "usr/lib/bar",
        "usr/share/doc",
        "foo/sub/deeper",
        "bar/sub",
        "home/.+/x",
        "home/user/x",
        "opt/a b",
        "data/dir",
    ] {
        mk(d);
    }
    for f in [
        &b"etc/passwd"[..],
        b"etc/skip/f",
        b"etc/skipx",
        b"etc/nodirs/f",
        b"etc/nodirs/sub/g",
        b"etc/.d/x/y",
        b"etc/x~",
        b"var/log/syslog",
        b"var/log/apt/history.log",
        b"usr/lib/foo/a",
        b"usr/lib/bar/b",
        b"usr/lib/libfoo.so",
        b"usr/share/doc/README",
        b"foo/a",
        b"foo/sub/b",
        b"foo/sub/deeper/c",
        b"foobar",
        b"bar/x",
        b"bar/sub/y",
        b"home/.+/x/f",
        b"home/user/x/f",
        b"opt/a b/c#d%e",
        b"opt/\xff",
        b"opt/caf\xc3\xa9",
        b"data/file",
        b"data/dir/in",
    ] {
        touch(f);
    }
    std::os::unix::fs::symlink("passwd", root.join("etc/link")).unwrap();
    let r = root.display();
    let conf = format!(
        "Perm = p\nOwn = p+u+g\nAll = p+u+g+n+i+s+m+c+sha256+ftype\n\
         {r}/etc All\n\
         !{r}/etc/skip$\n\
         !{r}/etc/nodirs d\n\
         !{r}/etc/.*~$\n\
         !{r}/etc/link l\n\
         ={r}/var/log/ Perm\n\
         {r}/usr/lib/foo$ Own\n\
         {r}/usr/lib/lib.*\\\\.so$ f Own\n\
         ={r}/foo/ Perm\n\
         {r}/foo/sub/deeper Own\n\
         ={r}/bar Perm\n\
         {r}/home/.+/x Own\n\
         {r}/opt/ f,d Perm\n\
         {r}/data/ d Own\n\
         {r}/data/file$ 0 Perm\n",
        r = r,
    );
    let expected = aide_init(&root, &conf);
    let cfg = crate::config::Config::parse_str(
        &format!("database_out=file:/dev/null\n{}", conf),
        std::path::Path::new("test.conf"),
        &crate::config::LoadOptions::default(),
    )
    .unwrap();
    let got = walk(&cfg.rules, &root);
    let got_names: Vec<String> = got
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    let exp_names: Vec<String> = expected
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(got_names, exp_names, "selected paths differ from aide");
    // The rule attributes (apart from the per-file adjustments) must agree too.
    for (name, attrs) in &got {
        let aide_attr = AttrSet(expected[name]);
        let adjustable = AttrSet::of(&[
            Attr::Filename,
            Attr::Linkname,
            Attr::Sha256,
            Attr::Acl,
            Attr::Selinux,
            Attr::Xattrs,
            Attr::E2fsattrs,
            Attr::Caps,
        ]);
        assert_eq!(
            attrs.minus(adjustable),
            aide_attr.minus(adjustable),
            "attributes differ for {}",
            String::from_utf8_lossy(name)
        );
    }
}

/// Runs `aide --dry-init` with `conf_body` and returns, for every path it looked at,
/// the attributes it would record (`None` = looked at, not recorded).
pub(crate) fn aide_dry_init(conf_body: &str) -> BTreeMap<Vec<u8>, Option<String>> {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("aide.conf");
    std::fs::write(&conf, format!("database_out=file:/dev/null\n{}", conf_body)).unwrap();
    let out = std::process::Command::new("/usr/bin/aide")
        .arg("--dry-init")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aide failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut map = BTreeMap::new();
    for l in out.stdout.split(|&b| b == b'\n') {
        if l.len() < 8 || !(l.starts_with(b"[X] ") || l.starts_with(b"[ ] ")) {
            continue;
        }
        let rest = &l[7..];
        let Some(end) = rest.windows(3).position(|w| w == b"': ") else {
            continue;
        };
        // aide prints control characters as `\ooo`.
        let mut path = Vec::new();
        let raw = &rest[..end];
        let mut j = 0;
        while j < raw.len() {
            if raw[j] == b'\\'
                && j + 3 < raw.len()
                && raw[j + 1..j + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            {
                path.push((raw[j + 1] - b'0') * 64 + (raw[j + 2] - b'0') * 8 + (raw[j + 3] - b'0'));
                j += 4;
            } else {
                path.push(raw[j]);
                j += 1;
            }
        }
        let tail = String::from_utf8_lossy(&rest[end + 3..]).into_owned();
        let attrs = if l[1] == b'X' {
            let q = tail.find("rule: '").unwrap() + 7;
            let e = tail.rfind("' (").unwrap();
            let body = &tail[q..e];
            let a = body.rsplit(' ').next().unwrap().to_string();
            // This scanner has no HAVAL (see attr::GROUP_H).
            let a = a
                .split('+')
                .filter(|x| *x != "haval" || crate::attr::GROUP_H.contains(Attr::Haval))
                .collect::<Vec<_>>()
                .join("+");
            Some(a)
        } else {
            None
        };
        map.insert(path, attrs);
    }
    map
}

/// The same walk as AIDE's `scan_dir`, with `select` deciding; only directories for which
/// `keep` is true are read (to keep the walk of a real system short).
pub(crate) fn dry_walk(
    rs: &RuleSet,
    keep: &dyn Fn(&[u8]) -> bool,
) -> BTreeMap<Vec<u8>, Option<String>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let show = |s: Selection| match s {
        Record { attrs, .. } => Some(crate::config::attr_names(attrs)),
        _ => None,
    };
    let mut out = BTreeMap::new();
    out.insert(b"/".to_vec(), show(rs.select(b"/", FileType::Directory)));
    let mut stack = vec![b"/".to_vec()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(std::ffi::OsStr::from_bytes(&dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let mut name = dir.clone();
            if name != b"/" {
                name.push(b'/');
            }
            name.extend_from_slice(e.file_name().as_bytes());
            let Ok(md) = std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(&name)) else {
                continue;
            };
            let ft = FileType::from_mode(md.mode());
            let sel = rs.select(&name, ft);
            out.insert(name.clone(), show(sel));
            let walk = matches!(sel, Record { recurse: true, .. } | Descend);
            if walk && md.is_dir() && keep(&name) {
                stack.push(name);
            }
        }
    }
    out
}

fn compare_maps(
    got: &BTreeMap<Vec<u8>, Option<String>>,
    want: &BTreeMap<Vec<u8>, Option<String>>,
    filter: &dyn Fn(&[u8]) -> bool,
) -> Vec<String> {
    let mut diffs = Vec::new();
    let keys: std::collections::BTreeSet<&Vec<u8>> = got
        .keys()
        .chain(want.keys())
        .filter(|k| filter(k))
        .collect();
    for k in keys {
        let (g, w) = (got.get(k), want.get(k));
        if g != w {
            diffs.push(format!(
                "{}: got {:?}, aide {:?}",
                String::from_utf8_lossy(k),
                g,
                w
            ));
        }
    }
    diffs
}

/// Random trees and random tricky rules, compared with `aide --dry-init`.
#[test]
fn random_rules_like_aide() {
    require_aide();
    let rounds: usize = std::env::var("FIO_RANDOM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut seed: u64 = std::env::var("FIO_RANDOM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let mut rnd = move |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    const NAMES: [&str; 9] = ["a", "b", "ab", "a.b", "x~", "sub", "lib", "c d", "1"];
    let mut failures = Vec::new();
    for round in 0..rounds {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        // Tree
        let mut dirs = vec![root.clone()];
        let mut all: Vec<String> = Vec::new();
        let mut i = 0;
        while i < dirs.len() && dirs.len() < 25 {
            let d = dirs[i].clone();
            let depth = d.strip_prefix(&root).unwrap().components().count();
            for _ in 0..2 + rnd(3) {
                let n = NAMES[rnd(NAMES.len())];
                let p = d.join(n);
                if std::fs::symlink_metadata(&p).is_ok() {
                    continue;
                }
                match rnd(4) {
                    0 | 1 if depth < 3 => {
                        std::fs::create_dir(&p).unwrap();
                        dirs.push(p.clone());
                    }
                    2 => std::os::unix::fs::symlink("a", &p).unwrap(),
                    _ => std::fs::write(&p, b"x").unwrap(),
                }
                all.push(p.strip_prefix(&root).unwrap().display().to_string());
            }
            i += 1;
        }
        // Rules
        const ATTRS: [&str; 4] = ["p", "p+u", "R", "L-i"];
        const RESTR: [&str; 6] = ["", "f ", "d ", "l ", "f,d ", "0 "];
        const RX: [&str; 6] = [".*", "[ab]+", "(a|b)", "a?", "\\\\.", "[^/]*"];
        let mut conf = String::new();
        for _ in 0..3 + rnd(6) {
            let base = if all.is_empty() || rnd(5) == 0 {
                String::new()
            } else {
                all[rnd(all.len())].clone()
            };
            let mut rx = format!("{}/{}", root.display(), base).replace(' ', "\\ ");
            match rnd(6) {
                0 => rx.push('$'),
                1 => rx.push('/'),
                2 => {
                    let cut = rx.rfind('/').unwrap();
                    rx.truncate(cut + 1);
                    rx.push_str(RX[rnd(RX.len())]);
                    if rnd(2) == 0 {
                        rx.push('$');
                    }
                }
                3 => {
                    rx.pop();
                }
                _ => {}
            }
            if rx.ends_with('\\') {
                rx.pop();
            }
            let line = match rnd(7) {
                0 | 1 => format!(
                    "={} {}{}\n",
                    rx,
                    RESTR[rnd(RESTR.len())],
                    ATTRS[rnd(ATTRS.len())]
                ),
                2 | 3 => {
                    let r = RESTR[rnd(RESTR.len())];
                    format!("!{} {}\n", rx, r.trim_end())
                }
                _ => format!(
                    "{} {}{}\n",
                    rx,
                    RESTR[rnd(RESTR.len())],
                    ATTRS[rnd(ATTRS.len())]
                ),
            };
            conf.push_str(&line);
        }
        if conf.lines().all(|l| l.starts_with('!')) {
            conf.push_str(&format!("{} p\n", root.display()));
        }
        let want = aide_dry_init(&conf);
        let cfg = crate::config::Config::parse_str(
            &conf,
            std::path::Path::new("random.conf"),
            &crate::config::LoadOptions::default(),
        )
        .unwrap();
        let root_b = root.as_os_str().as_encoded_bytes().to_vec();
        let rb = root_b.clone();
        let keep = move |p: &[u8]| p.starts_with(&rb) || rb.starts_with(p);
        let got = dry_walk(&cfg.rules, &keep);
        let filter = |p: &[u8]| p.starts_with(&root_b);
        let diffs = compare_maps(&got, &want, &filter);
        if !diffs.is_empty() {
            failures.push(format!("round {round}:\n{conf}\n{}", diffs.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// PCRE2 constructs, matched against odd names, like `aide --dry-init` does.
#[test]
fn regex_constructs_like_aide() {
    require_aide();
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let names: [&[u8]; 22] = [
        b"a",
        b"b",
        b"ab",
        b"a.b",
        b"axb",
        b"AB",
        b"aa",
        b"a{,2}",
        b"x~",
        b"c",
        b"]",
        b"-",
        b"12",
        b"a b",
        "\u{e9}".as_bytes(),
        b"\xff",
        b"a\n",
        b"ac",
        b"bc",
        b"a$",
        b"[x]",
        b"a\\b",
    ];
    for n in names {
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(n)), b"x").unwrap();
    }
    let regexes = [
        "a.b$",
        "a\\\\.b$",
        "[[:alpha:]]+$",
        "[^a]",
        "\\\\d+$",
        "\\\\w+$",
        "(?i)AB$",
        "a{2}",
        "a{,2}",
        ".*~$",
        "a|b",
        "(a|b)c",
        "[a-]$",
        "[]a]$",
        "\\\\x61$",
        "\\\\Qa.b\\\\E$",
        "[\\\\d]",
        "\\\\s",
        "a$",
        "a\\\\Z",
        "a\\\\z",
        "a*?$",
        "(?:a)b",
        "(?<n>a)b",
        "\\\\bb",
        ".$",
        "..$",
        "[\u{e9}]$",
        "\\\\xff$",
        "\\\\[x\\\\]$",
        "\\\\$$",
        "a\\\\\\\\b$",
        "[[:^digit:]]+$",
        "\\\\141$",
        "(?s).$",
        "\\\\h",
        "[\\\\w.]+$",
        "[a-c]+$",
        "a\\\\Eb",
    ];
    let mut failures = Vec::new();
    for rx in regexes {
        let conf = format!("{}/{} p\n", root.display(), rx);
        let cfg = match crate::config::Config::parse_str(
            &conf,
            std::path::Path::new("rx.conf"),
            &crate::config::LoadOptions::default(),
        ) {
            Ok(c) => c,
            Err(e) => {
                // Constructs this scanner rejects must be rejected loudly, never mismatched.
                eprintln!("note: {rx}: rejected: {e}");
                continue;
            }
        };
        let want = aide_dry_init(&conf);
        let rb = root.as_os_str().as_bytes().to_vec();
        let rb2 = rb.clone();
        let got = dry_walk(&cfg.rules, &move |p: &[u8]| {
            p.starts_with(&rb) || rb.starts_with(p)
        });
        let filter = |p: &[u8]| p.starts_with(&rb2) && p.len() > rb2.len();
        let diffs = compare_maps(&got, &want, &filter);
        if !diffs.is_empty() {
            failures.push(format!("{rx}: {}", diffs.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
