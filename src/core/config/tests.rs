use super::*;
use crate::attr::{Attr, GROUP_H};
use crate::entry::FileType;
use crate::options::{LogLevel, ReportFormat, ReportLevel, ReportUrl, Url};
use crate::select::{Restriction, RuleKind, Selection};
use eval::parse_num_workers;
use std::os::unix::fs::PermissionsExt;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str(
        text,
        Path::new("/etc/aide.conf"),
        &LoadOptions {
            hostname: Some("testhost".into()),
            ..Default::default()
        },
    )
}

fn attrs(names: &[Attr]) -> AttrSet {
    AttrSet::of(names)
}

/// A configuration from `tests/fixtures/aide-configs`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/aide-configs")
        .join(name)
}

/// Debian 12's `/etc/aide/aide.conf` as its `aide-common` package installs it.
fn debian12_text() -> String {
    std::fs::read_to_string(DEBIAN_CONF).unwrap_or_else(|e| {
        panic!("{DEBIAN_CONF}: {e} (install Debian's aide-common: apt-get install aide-common)")
    })
}

const DEBIAN_CONF: &str = "/etc/aide/aide.conf";

/// The aide binary the tests compare with; missing is a failure, not a skip.
fn require_aide() {
    assert!(
        Path::new("/usr/bin/aide").exists(),
        "/usr/bin/aide not found: install Debian's aide (apt-get install aide)"
    );
}

/// Upstream's default configuration in the 0.16 dialect it is written in, and its 0.18
/// translation.
fn operator_configs() -> (String, String) {
    let v016 = std::fs::read_to_string(fixture("upstream-default-aide.conf")).unwrap();
    let v018 = v016
        .replace("database=", "database_in=")
        .replace(
            "verbose=5",
            "log_level=warning\nreport_level=changed_attributes",
        )
        .replace("CONTENT_EX", "CONTENTEX")
        .replace("\n\n/hostroot/usr/    CONTENTEX\n", "\n");
    assert!(!v018.contains("/hostroot/usr/ "));
    (v016, v018)
}

#[test]
fn debian12_config_parses() {
    let text = debian12_text();
    let c = Config::parse_str(
        &text,
        Path::new("/etc/aide/aide.conf"),
        &LoadOptions::default(),
    )
    .unwrap();
    let o = &c.options;
    assert_eq!(
        o.database_in,
        Some(Url::File("/var/lib/aide/aide.db".into()))
    );
    assert_eq!(
        o.database_out,
        Some(Url::File("/var/lib/aide/aide.db.new".into()))
    );
    assert_eq!(
        o.database_new,
        Some(Url::File("/var/lib/aide/aide.db.new".into()))
    );
    assert!(o.gzip_dbout);
    assert_eq!(
        o.report.ignore_e2fsattrs,
        0x0010_0000 | 0x1000_0000 | 0x0000_1000 | 0x0000_0800
    );
    // Debian sets `database_attrs = Checksums` (= H).
    assert_eq!(o.report.database_attrs, GROUP_H);
    assert_eq!(
        o.report.urls,
        vec![ReportUrl {
            url: Url::Stdout,
            level: ReportLevel::ChangedAttributes,
            format: ReportFormat::Plain
        }]
    );
    assert!(
        c.rules.rules().len() > 1000,
        "{} rules",
        c.rules.rules().len()
    );
    // A log rule from aide.conf.d with `growing`, restricted to regular files.
    let r = c
        .rules
        .rules()
        .iter()
        .find(|r| r.regex == b"/var/log/acpid$")
        .unwrap();
    assert!(
        r.attrs.contains(Attr::Growing) && r.restriction == Restriction::from_letter(b'f').unwrap()
    );
    assert_eq!(r.node, b"/var/log");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

/// The rules must be the ones `aide -D -L config` reports, in the same order, with the same
/// attributes, restrictions and tree nodes.
#[test]
fn debian12_rules_equal_aide() {
    let text = debian12_text();
    require_aide();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("aide.conf");
    std::fs::write(&conf, &text).unwrap();
    let out = std::process::Command::new("/usr/bin/aide")
        .args(["-D", "-L", "config", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success());
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut expected = Vec::new();
    for l in log.lines() {
        let Some(k) = l.find(": add ") else { continue };
        let rest = &l[k + 6..];
        let Some(q) = rest.find(" rule '") else {
            continue;
        };
        let kind = &rest[..q];
        let body = &rest[q + 7..];
        let Some(e) = body.find("' to node '") else {
            continue;
        };
        let node_end = body[e + 11..].find('\'').unwrap();
        expected.push(format!(
            "{} {} @{}",
            kind,
            &body[..e],
            &body[e + 11..e + 11 + node_end]
        ));
    }
    let c = Config::parse_str(&text, &conf, &LoadOptions::default()).unwrap();
    let got: Vec<String> = c
        .rules
        .rules()
        .iter()
        .map(|r| {
            let kind = match r.kind {
                RuleKind::Selective => "selective",
                RuleKind::Equals => "equal",
                RuleKind::Negative => "negative",
            };
            format!(
                "{} {}{} {} {} @{}",
                kind,
                r.kind.prefix(),
                lossy(&r.regex),
                r.restriction.to_aide_string(),
                attr_names(r.attrs),
                lossy(&r.node)
            )
        })
        .collect();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        // aide logs a negative rule without the '!' and with an empty attribute list.
        let e = e.replace("negative '", "negative '!");
        // This scanner has no HAVAL, so `H` and rules naming haval drop it (with a warning),
        // as AIDE does for hashes it was not compiled with.
        let e = if GROUP_H.contains(Attr::Haval) {
            e
        } else {
            e.replace("+haval", "").replace("haval+", "")
        };
        assert_eq!(
            g.split_whitespace().collect::<Vec<_>>(),
            e.split_whitespace().collect::<Vec<_>>()
        );
    }
}

#[test]
fn rhel8_config_parses_with_verbose() {
    let p = fixture("rhel8-aide.conf");
    let c = Config::load(&p, &LoadOptions::default()).unwrap();
    let o = &c.options;
    assert_eq!(o.verbose, Some(5));
    assert_eq!(o.report.level, ReportLevel::ChangedAttributes);
    assert_eq!(
        o.database_in,
        Some(Url::File("/var/lib/aide/aide.db.gz".into()))
    );
    assert_eq!(
        o.database_out,
        Some(Url::File("/var/lib/aide/aide.db.new.gz".into()))
    );
    assert_eq!(
        o.report.urls,
        vec![
            ReportUrl {
                url: Url::File("/var/log/aide/aide.log".into()),
                level: ReportLevel::ChangedAttributes,
                format: ReportFormat::Plain
            },
            ReportUrl {
                url: Url::Stdout,
                level: ReportLevel::ChangedAttributes,
                format: ReportFormat::Plain
            },
        ]
    );
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("'database' is DEPRECATED")));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("special characters in group names")));
    let content_ex = attrs(&[
        Attr::Sha512,
        Attr::Ftype,
        Attr::Perm,
        Attr::Uid,
        Attr::Gid,
        Attr::Linkcount,
        Attr::Acl,
        Attr::Selinux,
        Attr::Xattrs,
    ]);
    assert_eq!(
        c.rules.select(b"/etc/passwd", FileType::Regular),
        Selection::Record {
            attrs: content_ex,
            recurse: true
        }
    );
    assert_eq!(
        c.rules.select(b"/usr/src/linux", FileType::Directory),
        Selection::Skip
    );
    assert_eq!(
        c.rules.select(
            b"/etc/NetworkManager/system-connections/x",
            FileType::Regular
        ),
        Selection::Skip
    );
}

#[test]
fn operator_default_configs_parse() {
    let (v016, v018) = operator_configs();
    let a = parse(&v016).unwrap();
    assert_eq!(a.options.verbose, Some(5));
    assert_eq!(
        a.options.database_in,
        Some(Url::File("/hostroot/etc/kubernetes/aide.db.gz".into()))
    );
    assert_eq!(
        a.options.database_out,
        Some(Url::File("/hostroot/etc/kubernetes/aide.db.gz.new".into()))
    );
    assert!(a.options.gzip_dbout);
    assert_eq!(a.options.report.urls.len(), 2);
    assert_eq!(
        a.options.report.urls[0].url,
        Url::File("/hostroot/etc/kubernetes/aide.log.new".into())
    );
    let b = parse(&v018).unwrap();
    assert_eq!(b.options.verbose, None);
    assert_eq!(b.options.log_level, LogLevel::Warning);
    assert_eq!(b.options.report.level, ReportLevel::ChangedAttributes);
    assert_eq!(b.options.database_in, a.options.database_in);
    assert!(
        !b.warnings.iter().any(|w| w.contains("special characters")),
        "{:?}",
        b.warnings
    );
    let rec = |c: &Config, p: &[u8], ft| matches!(c.rules.select(p, ft), Selection::Record { .. });
    for c in [&a, &b] {
        assert!(rec(c, b"/hostroot/etc/passwd", FileType::Regular));
        assert!(!rec(c, b"/hostroot/etc/mtab", FileType::Regular));
        assert!(!rec(
            c,
            b"/hostroot/etc/kubernetes/aide.db.gz",
            FileType::Regular
        ));
        assert!(!rec(
            c,
            b"/hostroot/etc/kubernetes/static-pod-resources/x/y",
            FileType::Regular
        ));
        assert!(rec(
            c,
            b"/hostroot/etc/kubernetes/kubelet.conf",
            FileType::Regular
        ));
        assert!(!rec(c, b"/hostroot/var/lib/x", FileType::Regular));
        assert_eq!(
            c.rules.select(b"/hostroot", FileType::Directory),
            Selection::Descend
        );
    }
    assert!(rec(&a, b"/hostroot/usr/bin/ls", FileType::Regular));
    assert!(!rec(&b, b"/hostroot/usr/bin/ls", FileType::Regular));
}

#[test]
fn verbose_is_accepted() {
    let c = parse("verbose=5\n/etc R\n").unwrap();
    assert_eq!(c.options.verbose, Some(5));
    assert_eq!(c.options.report.level, ReportLevel::ChangedAttributes);
    let c = parse("verbose=20\n").unwrap();
    assert_eq!(c.options.report.level, ReportLevel::AddedRemovedEntries);
    assert!(parse("verbose=x\n").is_err());
}

#[test]
fn unknown_attribute_is_an_error_with_file_and_line() {
    let e = parse("# comment\nFoo = p+u\n\n/etc p+sha513\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/aide.conf:4: unknown attribute 'sha513' in expression 'p+sha513'"
    );
    assert_eq!(e.exit().code(), 17);
    let e = parse("/etc R\n/tmp XXXXXX\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/aide.conf:2: unknown attribute 'XXXXXX' in expression 'XXXXXX'"
    );
}

#[test]
fn errors_like_aide() {
    let cases: &[(&str, &str)] = &[
        (
            "syslog_formatx=yes\n",
            "1: unknown config option: 'syslog_formatx'",
        ),
        ("foo = p\n", "1: unknown config option: 'foo'"),
        ("/tmp R # comment\n", "1: unexpected character: '#'"),
        ("/tmp D R\n", "1: invalid restriction 'D'"),
        ("!/tmp R\n", "1: invalid restriction 'R'"),
        (
            "!/tmp f R\n",
            "1: negative rule must not have an attribute expression",
        ),
        ("report_level=foo\n", "1: invalid report level: 'foo'"),
        ("gzip_dbout=1\n", "1: unrecognized bool value: '1'"),
        (
            "gzip_dbout=yes extra\n",
            "1: unknown config option: 'extra'",
        ),
        ("/tmp R\r", "1: unexpected character: '\\r'"),
        (
            "database_out=stdin\n",
            "1: 'database_out': unsupported URL-type: 'stdin'",
        ),
        (
            "database_in=stdout\n",
            "1: 'database_in': unsupported URL-type: 'stdout'",
        ),
        (
            "report_url=stdin\n",
            "1: unsupported report URL-type: 'stdin'",
        ),
        (
            "report_url=/var/log/x\n",
            "1: unknown URL-type: '/var/log/x'",
        ),
        (
            "report_url=file://otherhost/x\n",
            "cannot use hostname other than 'localhost' or 'testhost'",
        ),
        ("database_attrs=p\n", "1: invalid attribute(s): p"),
        ("num_workers=abc\n", "1: invalid number of workers: 'abc'"),
        ("log_level=loud\n", "1: invalid log level: 'loud'"),
        ("report_format=xml\n", "1: invalid report format: 'xml'"),
        ("/tmp/(x R\n", "1: error in rule '/tmp/(x'"),
        (
            "/a//b/c R\n",
            "1: error in rule '/a//b/c': invalid double slash",
        ),
        (
            "@@define DIR /srv\n@@{DIR}/a p\n",
            "2: unexpected character: '@'",
        ),
        (
            "/a R\n@@if defined X\n@@endif\n",
            "3: syntax error, unexpected @@endif",
        ),
        (
            "@@include /nonexistent/file\n",
            "1: '@@include': lstat for '/nonexistent/file' failed",
        ),
        (
            "@@include /tmp\n",
            "1: '@@include': '/tmp' is not a regular file",
        ),
        (
            "@@include /nonexistent ^x$\n",
            "1: '@@include': failed to open directory '/nonexistent'",
        ),
        (
            "/tmp/(?=x) R\n",
            "1: error in rule '/tmp/(?=x)': lookahead assertions are not supported",
        ),
        (
            "report_url=syslog:LOG_LOCAL1\n",
            "not supported by this scanner",
        ),
    ];
    for (text, want) in cases {
        let e = match parse(text) {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(e) => e,
        };
        assert!(
            e.to_string().contains(want),
            "{text:?}: got {e}, want {want}"
        );
        assert_eq!(e.exit().code(), 17, "{text:?}");
    }
    let e = Config::load(Path::new("/nonexistent/aide.conf"), &LoadOptions::default()).unwrap_err();
    assert_eq!(e.exit().code(), 18);
    assert!(e
        .to_string()
        .contains("cannot open config file '/nonexistent/aide.conf'"));
}

#[test]
fn options_are_filled() {
    let c = parse(
        "database_in=file:///var/lib/aide/aide.db\n\
         database_out = file:/out.db\n\
         database_out=file:/ignored\n\
         database_new=fd:3\n\
         gzip_dbout=true\n\
         database_add_metadata=no\n\
         report_level=list_entries\n\
         report_format=json\n\
         report_url=file:/var/log/aide.log\n\
         report_url=file:/var/log/aide.log\n\
         report_level=minimal\n\
         report_url=stderr\n\
         report_base16=yes\n\
         report_quiet=yes\n\
         report_detailed_init=true\n\
         report_summarize_changes=no\n\
         report_grouped=no\n\
         report_append=yes\n\
         report_ignore_added_attrs=a+m\n\
         report_ignore_removed_attrs=E\n\
         report_ignore_changed_attrs=a\n\
         report_force_attrs=u+g\n\
         report_ignore_e2fsattrs=0\n\
         database_attrs=sha256+md5\n\
         config_version=v1\\ 2\n\
         root_prefix=/mnt/root/\n\
         root_prefix=/ignored\n\
         num_workers=3\n\
         num_workers=5\n\
         log_level=notice\n\
         warn_dead_symlinks=yes\n\
         acl_no_symlink_follow=yes\n\
         config_check_warn_unrestricted_rules=yes\n",
    )
    .unwrap();
    let o = &c.options;
    assert_eq!(
        o.database_in,
        Some(Url::File("/var/lib/aide/aide.db".into()))
    );
    assert_eq!(o.database_out, Some(Url::File("/out.db".into())));
    assert_eq!(o.database_new, Some(Url::Fd(3)));
    assert!(
        o.gzip_dbout && !o.database_add_metadata && o.warn_dead_symlinks && o.acl_no_symlink_follow
    );
    assert_eq!(o.root_prefix, b"/mnt/root");
    assert_eq!(o.num_workers, Some(3));
    assert_eq!(o.log_level, LogLevel::Notice);
    let r = &o.report;
    assert_eq!(
        r.urls,
        vec![
            ReportUrl {
                url: Url::File("/var/log/aide.log".into()),
                level: ReportLevel::ListEntries,
                format: ReportFormat::Json
            },
            ReportUrl {
                url: Url::Stderr,
                level: ReportLevel::Minimal,
                format: ReportFormat::Json
            },
        ]
    );
    assert_eq!(r.level, ReportLevel::Minimal);
    assert_eq!(r.database_attrs, attrs(&[Attr::Sha256, Attr::Md5]));
    assert_eq!(r.config_version.as_deref(), Some("v1 2"));
    // Settings after the last report_url only apply to URLs defined after them in AIDE.
    assert!(!r.base16);
    assert!(c.warnings.iter().any(|w| w.contains("already defined")));
    let c = parse("report_base16=yes\nreport_quiet=yes\nreport_append=yes\nreport_ignore_changed_attrs=a\nreport_force_attrs=u+g\nreport_ignore_e2fsattrs=ie\n").unwrap();
    let r = &c.options.report;
    assert!(r.base16 && r.quiet && r.append);
    assert_eq!(r.ignore_changed_attrs, attrs(&[Attr::Atime]));
    assert_eq!(r.force_attrs, attrs(&[Attr::Uid, Attr::Gid]));
    assert_eq!(r.ignore_e2fsattrs, 0x10 | 0x80000);
    assert_eq!(
        r.urls,
        vec![ReportUrl {
            url: Url::Stdout,
            level: ReportLevel::ChangedAttributes,
            format: ReportFormat::Plain
        }]
    );
    let c =
        parse("database=file:/a\ngrouped=no\nsummarize_changes=no\nsyslog_format=yes\n").unwrap();
    assert_eq!(c.options.database_in, Some(Url::File("/a".into())));
    assert!(!c.options.report.grouped && !c.options.report.summarize_changes);
    assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
}

#[test]
fn unsupported_hash_in_a_rule_is_an_error() {
    let e = parse("X = p\n/a haval+p\n").unwrap_err();
    assert!(
        e.to_string()
            .contains(":2: hash algorithm(s) not supported by fio-scanner: haval"),
        "{e}"
    );
    assert_eq!(e.exit().code(), 17);
}

#[test]
fn groups_and_expressions() {
    let c = parse(
        "OwnerMode = p+u+g+ftype\nSize = s+b\nInodeData = OwnerMode+n+i+Size+l+X\nVarInode = InodeData-i\n\
         R = p\nCONTENT_EX = sha512+ftype\n/a VarInode\n/b R\n/c CONTENT_EX\n/d H-md5\n",
    )
    .unwrap();
    let rules = c.rules.rules();
    let x = crate::attr::GROUP_X;
    let owner = attrs(&[Attr::Perm, Attr::Uid, Attr::Gid, Attr::Ftype]);
    let inode = owner
        .union(attrs(&[
            Attr::Linkcount,
            Attr::Inode,
            Attr::Size,
            Attr::Bcount,
            Attr::Linkname,
        ]))
        .union(x);
    assert_eq!(rules[0].attrs, inode.without(Attr::Inode));
    assert_eq!(rules[1].attrs, attrs(&[Attr::Perm]), "redefined R");
    assert_eq!(rules[2].attrs, attrs(&[Attr::Sha512, Attr::Ftype]));
    assert_eq!(rules[3].attrs, GROUP_H.without(Attr::Md5));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.contains("special characters in group names")));
    assert_eq!(
        c.rules.db_out_attrs(),
        rules.iter().fold(AttrSet::EMPTY, |a, r| a.union(r.attrs))
    );
}

#[test]
fn rules_syntax() {
    let c = parse(
        "  /a R\n\t=/b/ f,d p\n!/c\n!/d d,l\n/e 0 p\n/f\\\\.d p\n/g\\ h p\n/i@j p\r\n/k\\@l p\n/m f, d p + u\n",
    )
    .unwrap();
    let r = c.rules.rules();
    let f = Restriction::from_letter(b'f').unwrap();
    let d = Restriction::from_letter(b'd').unwrap();
    let l = Restriction::from_letter(b'l').unwrap();
    assert_eq!(
        (r[0].kind, r[0].regex.as_slice()),
        (RuleKind::Selective, &b"/a"[..])
    );
    assert_eq!(
        (r[1].kind, r[1].regex.as_slice(), r[1].restriction),
        (RuleKind::Equals, &b"/b/"[..], f.union(d))
    );
    assert_eq!(r[1].node, b"/b");
    assert_eq!(
        (r[2].kind, r[2].attrs),
        (RuleKind::Negative, AttrSet::EMPTY)
    );
    assert_eq!(r[3].restriction, d.union(l));
    assert_eq!(r[4].restriction, Restriction::NONE);
    assert_eq!(r[5].regex, b"/f\\.d");
    assert_eq!(r[6].regex, b"/g h");
    assert_eq!(r[7].regex, b"/i@j");
    assert_eq!(r[8].regex, b"/k@l");
    assert_eq!(r[9].attrs, attrs(&[Attr::Perm, Attr::Uid]));
    assert_eq!(r[9].line, 10);
    // `%XX` is not decoded in rules (AIDE 0.18 matches it literally).
    let c = parse("/a%20b p\n").unwrap();
    assert_eq!(c.rules.rules()[0].regex, b"/a%20b");
}

#[test]
fn macros() {
    let c = parse(
        "@@define DIR srv\n\
         @@define EMPTY\n\
         @@ifdef DIR\n\
         /@@{DIR}/a p\n\
         @@if not defined NOPE\n\
         /@@{DIR}/b@@{EMPTY}@@{UNDEFINED} p\n\
         @@else\n\
         /never p\n\
         @@endif\n\
         @@else\n\
         /never2 p\n\
         @@endif\n\
         @@undef DIR\n\
         @@ifndef DIR\n\
         /undefd p\n\
         @@endif\n\
         @@ifhost testhost\n\
         /host/@@{HOSTNAME} p\n\
         @@endif\n\
         @@ifnhost testhost\n\
         /nothost p\n\
         @@endif\n\
         @@if hostname other\n\
         /other p\n\
         @@endif\n\
         @@if exists /\n\
         /exists p\n\
         @@endif\n\
         @@if not exists /nonexistent/x\n\
         /notexists p\n\
         @@endif\n\
         @@define HOSTNAME myname\n\
         /h2/@@{HOSTNAME} p\n",
    )
    .unwrap();
    let rx: Vec<String> = c.rules.rules().iter().map(|r| lossy(&r.regex)).collect();
    assert_eq!(
        rx,
        vec![
            "/srv/a",
            "/srv/b",
            "/undefd",
            "/host/testhost",
            "/exists",
            "/notexists",
            "/h2/myname"
        ]
    );
}

#[test]
fn before_and_after_lines() {
    let lo = LoadOptions {
        before: vec!["database_out=file:/before".into(), "Grp = p".into()],
        after: vec![
            "database_out=file:/after".into(),
            "report_level=minimal".into(),
            "/z Grp".into(),
        ],
        hostname: Some("h".into()),
    };
    let c = Config::parse_str("database_out=file:/config\n/y Grp\n", Path::new("c"), &lo).unwrap();
    assert_eq!(c.options.database_out, Some(Url::File("/before".into())));
    assert_eq!(c.rules.rules().len(), 2);
    assert_eq!(c.rules.rules()[1].file, "(--after)");
    assert_eq!(c.options.report.urls[0].level, ReportLevel::Minimal);
    let e = Config::parse_str(
        "",
        Path::new("c"),
        &LoadOptions {
            after: vec!["/x XX".into()],
            ..lo
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "(--after):1: unknown attribute 'XX' in expression 'XX'"
    );
}

#[test]
fn includes_and_x_includes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let inc = d.join("inc");
    std::fs::create_dir(&inc).unwrap();
    std::fs::write(inc.join("10_a"), "/a p\n@@define FROM_A yes\n").unwrap();
    std::fs::write(inc.join("20_b"), "/b@@{FROM_A} p\n").unwrap();
    std::fs::write(inc.join("skip.conf"), "/never p\n").unwrap();
    std::fs::create_dir(inc.join("30_dir")).unwrap();
    let script = inc.join("15_exec");
    std::fs::write(&script, "#!/bin/sh\necho \"/x/$MYVAR p\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let single = d.join("single.conf");
    std::fs::write(&single, "/single p\n").unwrap();
    let text = format!(
        "@@x_include_setenv MYVAR fromenv\n@@include {s}\n@@include {i} ^[0-9]+_[ab]$ /pre/\n@@x_include {i} ^[0-9]+_[a-z]+$\n",
        s = single.display(),
        i = inc.display()
    );
    let c = parse(&text).unwrap();
    let rx: Vec<String> = c.rules.rules().iter().map(|r| lossy(&r.regex)).collect();
    assert_eq!(
        rx,
        vec![
            "/single",
            "/pre/a",
            "/pre/byes",
            "/a",
            "/x/fromenv",
            "/byes"
        ]
    );
    assert_eq!(
        c.rules.rules()[4].file,
        format!("{} (stdout)", script.display())
    );
    // A program writing to stderr fails like in AIDE (exit code 20).
    std::fs::write(&script, "#!/bin/sh\necho oops >&2\n").unwrap();
    let e = parse(&text).unwrap_err();
    assert_eq!(e.exit().code(), 20, "{e}");
    assert!(e.to_string().contains("stderr> oops"), "{e}");
    std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
    assert_eq!(parse(&text).unwrap_err().exit().code(), 20);
    // A group-writable program is refused.
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o775)).unwrap();
    let e = parse(&text).unwrap_err();
    assert!(e.to_string().contains("bad ownership or modes"), "{e}");
    // Errors inside included files name that file.
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(inc.join("20_b"), "\n/b XX\n").unwrap();
    let e = parse(&text).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: unknown attribute 'XX' in expression 'XX'",
            inc.join("20_b").display()
        )
    );
    // Nesting is limited to 16 levels.
    std::fs::write(
        d.join("self.conf"),
        format!("@@include {}\n", d.join("self.conf").display()),
    )
    .unwrap();
    let e = parse(&format!("@@include {}\n", d.join("self.conf").display())).unwrap_err();
    assert!(
        e.to_string()
            .contains("include files are nested too deeply"),
        "{e}"
    );
    // An unreadable included file is an I/O error.
    let unreadable = d.join("unreadable.conf");
    std::fs::write(&unreadable, "/u p\n").unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&unreadable).is_err() {
        let e = parse(&format!("@@include {}\n", unreadable.display())).unwrap_err();
        assert_eq!(e.exit().code(), 18);
    }
}

#[test]
fn num_workers_forms() {
    assert_eq!(parse_num_workers(b"4"), Some(4));
    assert_eq!(parse_num_workers(b"0"), Some(0));
    assert!(parse_num_workers(b"100%").unwrap() >= 1);
    assert_eq!(parse_num_workers(b"0%"), Some(0));
    assert_eq!(parse_num_workers(b"101%"), None);
    assert_eq!(parse_num_workers(b"-1"), None);
    assert_eq!(parse_num_workers(b"4x"), None);
}

#[test]
fn stdin_and_missing_newline() {
    let c = parse("/a p").unwrap();
    assert_eq!(c.rules.rules().len(), 1);
    let c = parse("").unwrap();
    assert!(c.rules.is_empty());
    assert_eq!(c.path, Path::new("/etc/aide.conf"));
}

/// The installed Debian configuration on the whole file system, against `aide --dry-init`
/// (about a minute).
#[test]
fn debian12_whole_system_like_aide() {
    require_aide();
    let text = std::fs::read_to_string("/etc/aide/aide.conf").unwrap();
    let want = crate::select::tests::aide_dry_init(&text);
    let c = Config::load(Path::new("/etc/aide/aide.conf"), &LoadOptions::default()).unwrap();
    let got = crate::select::tests::dry_walk(&c.rules, &|_| true);
    // Parts of the system that change while the test runs are left out, the build tree too
    // (wherever the checkout is).
    let workspace = std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .unwrap()
        .into_os_string()
        .into_encoded_bytes();
    let volatile = |p: &[u8]| {
        [
            &workspace[..],
            &b"/tmp"[..],
            b"/work",
            b"/proc",
            b"/sys",
            b"/root",
            b"/var/log",
            b"/var/cache",
            b"/run",
            b"/dev/pts",
            b"/dev/shm",
        ]
        .iter()
        .any(|v| p.starts_with(v) && (p.len() == v.len() || p[v.len()] == b'/'))
    };
    let mut diffs = Vec::new();
    let keys: std::collections::BTreeSet<&Vec<u8>> = got
        .keys()
        .chain(want.keys())
        .filter(|k| !volatile(k))
        .collect();
    for k in &keys {
        if got.get(*k) != want.get(*k) {
            diffs.push(format!(
                "{}: got {:?}, aide {:?}",
                lossy(k),
                got.get(*k),
                want.get(*k)
            ));
        }
    }
    eprintln!(
        "compared {} paths, {} recorded by aide",
        keys.len(),
        want.values().filter(|v| v.is_some()).count()
    );
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
