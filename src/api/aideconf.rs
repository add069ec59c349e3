//! The AIDE configuration the operator hands to the daemons.
//!
//! A daemon pod sees its node's root filesystem under [`HOSTROOT`], so a configuration written
//! for the node (paths such as `/etc`) has to be rewritten before the daemon can use it: rule
//! paths and include paths move under the host root, and the database and log the daemon and the
//! result collector look for are always `/hostroot/etc/kubernetes/aide.db.gz` and `aide.log.new`,
//! whatever the user's file says. The operator validates the rendered text before rolling it out
//! (without the node's filesystem, see [`validate`]) and identifies it by its hash in re-init
//! requests ([`config_hash`]).

use std::ops::Range;
use std::path::Path;

use fio_core::config::host::Detached;
use fio_core::config::statement::{read_line, Statement};
use fio_core::config::{Config, ConfigError, LoadOptions};

/// Where the daemon pod mounts the node's root filesystem.
pub const HOSTROOT: &str = "/hostroot";

/// Upstream's default aide.conf (AIDE 0.16 dialect, the variant that also scans /usr), verbatim,
/// no trailing newline.
///
/// Byte for byte, so users who never set a config scan exactly what upstream's operator scans,
/// and upstream's e2e "changed config" (this text plus a comment) is a change of this text.
pub const DEFAULT_CONFIG: &str = r"@@define DBDIR /hostroot/etc/kubernetes
@@define LOGDIR /hostroot/etc/kubernetes
database=file:@@{DBDIR}/aide.db.gz
database_out=file:@@{DBDIR}/aide.db.gz.new
gzip_dbout=yes
verbose=5
report_url=file:@@{LOGDIR}/aide.log.new
report_url=stdout
PERMS = p+u+g+acl+selinux+xattrs
CONTENT_EX = sha512+ftype+p+u+g+n+acl+selinux+xattrs

/hostroot/boot/        CONTENT_EX
/hostroot/root/\..* PERMS
/hostroot/root/   CONTENT_EX
!/hostroot/root/\.kube
!/hostroot/usr/src/
!/hostroot/usr/tmp/

/hostroot/usr/    CONTENT_EX
# OpenShift specific excludes
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
/hostroot/etc/    CONTENT_EX";

/// The default configuration, without the excludes that `spec.platformRules` replaces with
/// rules when `platform_rules` ([`crate::expected::PLATFORM_FILES`]).
pub fn default_config(platform_rules: bool) -> String {
    if !platform_rules {
        return DEFAULT_CONFIG.to_owned();
    }
    let replaced = |l: &str| {
        crate::expected::PLATFORM_FILES
            .iter()
            .any(|f| f.excluded_by == l)
    };
    let mut out: Vec<&str> = DEFAULT_CONFIG.lines().filter(|l| !replaced(l)).collect();
    if DEFAULT_CONFIG.ends_with('\n') {
        out.push("");
    }
    out.join("\n")
}

const DEFINE_DBDIR: &str = "@@define DBDIR /hostroot/etc/kubernetes";
const DEFINE_LOGDIR: &str = "@@define LOGDIR /hostroot/etc/kubernetes";
const DB_IN_URL: &str = "file:@@{DBDIR}/aide.db.gz";
const DB_OUT_URL: &str = "file:@@{DBDIR}/aide.db.gz.new";
const REPORT_URL: &str = "file:@@{LOGDIR}/aide.log.new";

/// What [`convert_user_config`] found in the user's text.
#[derive(Default)]
struct Seen {
    db_in: bool,
    db_out: bool,
    report_file: bool,
}

/// Whether `s` starts with the whole path component `/hostroot` (not `/hostrootx`).
fn at_hostroot(s: &str) -> bool {
    match s.strip_prefix(HOSTROOT) {
        Some(r) => {
            r.is_empty() || r.starts_with(|c: char| c == '/' || c == '$' || c.is_whitespace())
        }
        None => false,
    }
}

/// `line` with each range replaced by its text (ranges in order, not overlapping; an empty
/// range inserts).
fn edit(line: &str, edits: &[(Range<usize>, String)]) -> String {
    let mut out = String::with_capacity(line.len() + 32);
    let mut last = 0;
    for (r, new) in edits {
        out.push_str(&line[last..r.start]);
        out.push_str(new);
        last = r.end;
    }
    out.push_str(&line[last..]);
    out
}

/// `line` without a final `\r`, and that `\r`.
fn split_cr(line: &str) -> (&str, &str) {
    match line.strip_suffix('\r') {
        Some(l) => (l, "\r"),
        None => (line, ""),
    }
}

/// `@@include PATH [RX [PREFIX]]` for the daemon (`args` as the lexer found them in `line`).
///
/// The path is read on the node, so it moves under the host root. The files a directory include
/// pulls in were written for the node too, so their rules get the rule prefix `/hostroot`
/// (combined with the user's own prefix, which AIDE prepends to their rules). A single-file
/// include has no prefix argument: its rules stay as written (a known gap: use the directory
/// form). Includes already under `/hostroot`, or whose path is a variable, are left alone: their
/// author wrote them for the daemon, or we cannot tell.
fn convert_include(line: &str, args: &[Range<usize>]) -> Option<String> {
    let path = args.first()?;
    let under = |r: &Range<usize>| {
        let arg = &line[r.clone()];
        (arg.starts_with('/') && !at_hostroot(arg)).then(|| (r.clone(), format!("{HOSTROOT}{arg}")))
    };
    let mut edits = vec![under(path)?];
    match args {
        // After the regex, before any trailing blanks.
        [_, rx] => edits.push((rx.end..rx.end, format!(" {HOSTROOT}"))),
        [_, _, prefix, ..] => edits.extend(under(prefix)),
        _ => {}
    }
    Some(edit(line, &edits))
}

/// One line of a user's configuration, for the daemon. What the line is comes from the
/// scanner's own lexer ([`read_line`]): a line it refuses is left as written, and
/// [`validate`] then names it.
fn convert_line(line: &str, seen: &mut Seen) -> String {
    let (line, cr) = split_cr(line);
    let indent = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
    let whole = |new: String| Some(format!("{indent}{new}"));
    let new = match read_line(line).statement {
        Statement::Define { name } if name == "DBDIR" => whole(DEFINE_DBDIR.to_owned()),
        Statement::Define { name } if name == "LOGDIR" => whole(DEFINE_LOGDIR.to_owned()),
        Statement::Option { name, value } => match &line[name] {
            "database" => {
                seen.db_in = true;
                whole(format!("database={DB_IN_URL}"))
            }
            // AIDE 0.17+ spelling of `database`; kept so a 0.18 config gets no deprecation
            // warning.
            "database_in" => {
                seen.db_in = true;
                whole(format!("database_in={DB_IN_URL}"))
            }
            "database_out" => {
                seen.db_out = true;
                whole(format!("database_out={DB_OUT_URL}"))
            }
            // The "new" database of `--compare` is the one `--init`/`--update` write: point it
            // at database_out's file, on the node, instead of a path inside the daemon's
            // container.
            "database_new" => whole(format!("database_new={DB_OUT_URL}")),
            // Other report URLs (stdout, stderr, fd:) are kept: they do not touch the node.
            "report_url" if line[value].starts_with("file:") => {
                seen.report_file = true;
                whole(format!("report_url={REPORT_URL}"))
            }
            _ => None,
        },
        // A rule's path is a regex, but `/hostroot` in front is a literal directory like any
        // other: escaped characters and regex syntax after it need nothing.
        Statement::Rule { path, .. } => (!at_hostroot(&line[path.clone()]))
            .then(|| edit(line, &[(path.start..path.start, HOSTROOT.to_owned())])),
        Statement::Include { args, .. } => convert_include(line, &args),
        _ => None,
    };
    format!("{}{cr}", new.as_deref().unwrap_or(line))
}

/// Whether, reading `lines` in order, `@@{var}` is used before `@@define var` (or never defined).
fn needs_define(lines: &[String], var: &str) -> bool {
    for l in lines {
        let view = read_line(split_cr(l).0);
        if matches!(&view.statement, Statement::Define { name } if name == var) {
            return false;
        }
        if view.reads.iter().any(|r| r == var) {
            return true;
        }
    }
    false
}

/// Whether `line` is a negative rule for the daemon's own files in the database directory.
fn excludes_own_files(line: &str) -> bool {
    let line = split_cr(line).0;
    matches!(read_line(line).statement, Statement::Rule { marker, path }
        if &line[marker.clone()] == "!" && line[path.clone()].starts_with("/hostroot/etc/kubernetes/aide"))
}

/// Excludes what the daemon writes in the database directory: the database, its backups, the
/// logs and the re-init record.
const OWN_FILES_EXCLUDE: &str = "!/hostroot/etc/kubernetes/aide\\..*";

/// Convert a user's aide.conf (written for the node's real paths) to the host-root prefix, as
/// upstream's prepareAideConf does, plus the gaps upstream misses.
///
/// Line by line, indentation, comments, macros and blank lines kept, so a user can still find
/// their lines in the ConfigMap (newlines round-trip: a trailing newline stays).
///
/// Decisions beyond upstream:
/// - The database and log locations are not the user's choice: the daemon rotates
///   `aide.db.gz`/`aide.db.gz.new` and the collector reads `aide.log.new`, all in
///   `/hostroot/etc/kubernetes`. A config without a `database`/`database_in`, `database_out` or
///   `report_url=file:` line gets ours, at the end: after the user's `@@define`s, and a
///   `report_url` takes a copy of the report settings made before it, so the user's
///   `report_level` etc. apply to it.
/// - `@@define DBDIR`/`LOGDIR` are added at the top when a line would use them before any
///   definition (upstream silently expanded them to nothing then).
/// - `gzip_dbout` is left as the user wrote it (upstream does not add it either): the database
///   reader detects compression by content, so an uncompressed `aide.db.gz` works, and we do not
///   override an explicit choice.
/// - Indented lines are converted like their unindented text; option lines may have blanks
///   around `=` (`database = ...`), as AIDE allows.
/// - `root_prefix` and `@@x_include_setenv` values are kept as written.
/// - The daemon's own files are excluded (`OWN_FILES_EXCLUDE`) unless the config already
///   excludes `/hostroot/etc/kubernetes/aide*`: they change with every scan.
pub fn convert_user_config(text: &str) -> String {
    let mut seen = Seen::default();
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| convert_line(l, &mut seen))
        .collect();
    let mut added = Vec::new();
    if !seen.db_in {
        added.push(format!("database={DB_IN_URL}"));
    }
    if !seen.db_out {
        added.push(format!("database_out={DB_OUT_URL}"));
    }
    if !seen.report_file {
        added.push(format!("report_url={REPORT_URL}"));
    }
    // The daemon's own files change with every scan and re-init; a user config that selects
    // /etc would report them every time (upstream's conversion did not exclude them).
    if !lines.iter().any(|l| excludes_own_files(l)) {
        added.push(OWN_FILES_EXCLUDE.to_string());
    }
    // Before a final empty element, so a trailing newline stays the last character.
    let at = if lines.len() > 1 && lines.last().is_some_and(|l| l.is_empty()) {
        lines.len() - 1
    } else {
        lines.len()
    };
    lines.splice(at..at, added);
    let mut out = Vec::new();
    if needs_define(&lines, "DBDIR") {
        out.push(DEFINE_DBDIR.to_string());
    }
    if needs_define(&lines, "LOGDIR") {
        out.push(DEFINE_LOGDIR.to_string());
    }
    out.append(&mut lines);
    out.join("\n")
}

/// Check that a rendered config is one the scanner accepts; the error names the file and
/// line, as `fio-scanner --config-check` does.
///
/// The operator must reject a broken config before rolling it out, but it runs without the
/// node's filesystem and must never run a program named in a user's config. So it evaluates on
/// a [`Detached`] host: the whole text is checked for syntax, and evaluated up to the first
/// statement that needs the node (`@@include`, `@@if exists`); what comes after may depend on
/// what the node provides, and the daemon reports an error there as its node's. `@@x_include`
/// is refused outright (the daemon refuses it too), and a fully evaluated configuration must
/// name the daemon's own database and report files only ([`OwnFiles::check`]), as the daemon
/// checks again after its includes.
///
/// [`OwnFiles::check`]: fio_core::runner::OwnFiles::check
pub fn validate(text: &str) -> Result<(), ConfigError> {
    let origin = Path::new("aide.conf");
    let own = fio_core::runner::OwnFiles::in_dir(&Path::new(HOSTROOT).join("etc/kubernetes"));
    match Config::parse_str_on(&Detached, text, origin, &LoadOptions::default()) {
        Ok(cfg) => own.check(&cfg),
        Err(ConfigError::NeedsHost { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// SHA-256 hex of the config text: the identity of a config in re-init requests.
///
/// The daemon compares it with the hash of the ConfigMap it fetched, so it re-initialises with
/// the config the request was made for and not a stale one; any byte changes it.
pub fn config_hash(text: &str) -> String {
    fio_core::hash::sha256_hex(text.as_bytes())
}

/// `s` with the regex metacharacters escaped, for a directory inside a rule path.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()[]{}|^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a `/hostroot` at byte `i` of `s` starts a path: at the start, after a blank, a rule
/// marker (`!`, `=`), a URL scheme (`file:`, `file://`) or a quote.
fn starts_path(s: &str, i: usize) -> bool {
    let before = &s[..i];
    match before.chars().last() {
        None => true,
        Some(c) if c.is_whitespace() || "!=:\"'".contains(c) => true,
        Some('/') => before.ends_with("file://"),
        Some(_) => false,
    }
}

/// Replace every `/hostroot` that is a whole leading path component of a path in `s` by `with`.
fn replace_hostroot(s: &str, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (i, _) in s.match_indices(HOSTROOT) {
        if i < last || !starts_path(s, i) || !at_hostroot(&s[i..]) {
            continue;
        }
        out.push_str(&s[last..i]);
        let next_slash = s[i + HOSTROOT.len()..].starts_with('/');
        // `dir` = `/`: `/hostroot/etc` is `/etc`, a bare `/hostroot` is `/`.
        out.push_str(if with.is_empty() && !next_slash {
            "/"
        } else {
            with
        });
        last = i + HOSTROOT.len();
    }
    out.push_str(&s[last..]);
    out
}

/// For daemons whose node root is not at /hostroot (simulated nodes): replace the `/hostroot`
/// path prefix (only where it is a whole path component: followed by `/`, whitespace, `$`, end
/// of line or end of text) with `dir`.
///
/// Rule paths are regexes, so there `dir` is regex-escaped (a temp dir such as `/tmp/.tmpA+b`
/// must match itself only); option values, defines and include paths are plain strings and get
/// it as is, except an include's rule prefix, which is prepended to regexes. `dir` must not
/// contain blanks (AIDE paths are blank-separated).
pub fn map_hostroot(text: &str, dir: &Path) -> String {
    let d = dir.to_string_lossy();
    let plain = d.trim_end_matches('/');
    let escaped = regex_escape(plain);
    text.split('\n')
        .map(|line| match read_line(split_cr(line).0).statement {
            Statement::Rule { .. } => replace_hostroot(line, &escaped),
            Statement::Include { args, .. } => {
                let mut edits = Vec::new();
                for (k, with) in [(0, plain), (2, escaped.as_str())] {
                    if let Some(r) = args.get(k) {
                        edits.push((r.clone(), replace_hostroot(&line[r.clone()], with)));
                    }
                }
                edit(line, &edits)
            }
            _ => replace_hostroot(line, plain),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fio_core::entry::FileType;
    use fio_core::options::Url;
    use fio_core::select::Selection;
    use std::path::PathBuf;

    /// The directory of the database and the log on the node, as the daemon sees it.
    const KUBE_DIR: &str = "/hostroot/etc/kubernetes";

    /// A real configuration: from `tests/fixtures/aide-configs`, or (`debian12/...`) Debian's
    /// `/etc/aide` as its aide-common package installs it. Missing is a failure.
    fn reference(rel: &str) -> String {
        let p = match rel.strip_prefix("debian12/") {
            Some(rest) => PathBuf::from("/etc/aide").join(rest),
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/aide-configs")
                .join(rel),
        };
        std::fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (Debian's configuration comes with its aide-common package)",
                p.display()
            )
        })
    }

    fn load(text: &str) -> Config {
        Config::parse_str(
            text,
            Path::new("aide.conf"),
            &LoadOptions {
                hostname: Some("node-1".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    fn records(c: &Config, path: &str) -> bool {
        matches!(
            c.rules.select(path.as_bytes(), FileType::Regular),
            Selection::Record { .. }
        )
    }

    fn conv_line(l: &str) -> String {
        // The line itself, without the options convert_user_config adds around it.
        let out = convert_user_config(&format!(
            "{DEFINE_DBDIR}\n{DEFINE_LOGDIR}\ndatabase={DB_IN_URL}\ndatabase_out={DB_OUT_URL}\n\
             report_url={REPORT_URL}\n{l}"
        ));
        out.split('\n').nth(5).unwrap().to_string()
    }

    /// Upstream's TestPrepareAideConf, input and expected output verbatim.
    #[test]
    fn upstream_prepare_aide_conf() {
        let input = "\n# comment\n@@define DBDIR /blah\n@@define LOGDIR /blah\n\
            database=file:@@{DBDIR}/something\ndatabase_out=file:@@{DBDIR}/aide.db.new.gz\n\
            # comment\nreport_url=file:@@{LOGDIR}/coolaide.log\nreport_url=stdout\n\
            /etc/crowbar\n/var/ladder\n!/usr/multipass\nother\n";
        let expected = "\n# comment\n@@define DBDIR /hostroot/etc/kubernetes\n\
            @@define LOGDIR /hostroot/etc/kubernetes\ndatabase=file:@@{DBDIR}/aide.db.gz\n\
            database_out=file:@@{DBDIR}/aide.db.gz.new\n# comment\n\
            report_url=file:@@{LOGDIR}/aide.log.new\nreport_url=stdout\n/hostroot/etc/crowbar\n\
            /hostroot/var/ladder\n!/hostroot/usr/multipass\nother\n";
        // Plus, deliberately, the exclusion of the daemon's own files.
        let expected = format!("{expected}{OWN_FILES_EXCLUDE}\n");
        assert_eq!(convert_user_config(input), expected);
    }

    #[test]
    fn rules_get_the_prefix_once() {
        assert_eq!(conv_line("/etc/crowbar"), "/hostroot/etc/crowbar");
        assert_eq!(conv_line("!/usr/multipass"), "!/hostroot/usr/multipass");
        assert_eq!(conv_line("=/etc$ DIR"), "=/hostroot/etc$ DIR");
        assert_eq!(conv_line("/ R"), "/hostroot/ R");
        for done in [
            "/hostroot/etc/crowbar CONTENT_EX",
            "!/hostroot/usr/multipass",
            "=/hostroot/etc$ DIR",
            "/hostroot PERMS",
            "/hostroot$ PERMS",
            "!/hostroot",
        ] {
            assert_eq!(conv_line(done), done);
        }
        // `/hostroot` must be a whole component to count as already prefixed.
        assert_eq!(conv_line("/hostrootx R"), "/hostroot/hostrootx R");
        assert_eq!(conv_line("!/hostroot.bak"), "!/hostroot/hostroot.bak");
    }

    #[test]
    fn escaped_and_regex_paths_are_just_paths() {
        assert_eq!(conv_line("/root/\\..* PERMS"), "/hostroot/root/\\..* PERMS");
        assert_eq!(conv_line("!/root/\\.kube"), "!/hostroot/root/\\.kube");
        assert_eq!(conv_line("/etc/my\\ dir/ R"), "/hostroot/etc/my\\ dir/ R");
        assert_eq!(
            conv_line("/etc/(a|b)\\.conf$ R"),
            "/hostroot/etc/(a|b)\\.conf$ R"
        );
    }

    #[test]
    fn indented_lines_are_converted_and_keep_their_indentation() {
        assert_eq!(conv_line("  /etc/foo R"), "  /hostroot/etc/foo R");
        assert_eq!(conv_line("\t!/etc/mtab$"), "\t!/hostroot/etc/mtab$");
        assert_eq!(conv_line("  =/srv$ R"), "  =/hostroot/srv$ R");
        assert_eq!(
            conv_line("    database=file:/var/lib/aide/aide.db.gz"),
            "    database=file:@@{DBDIR}/aide.db.gz"
        );
        assert_eq!(
            conv_line("  @@define DBDIR /var/lib/aide"),
            "  @@define DBDIR /hostroot/etc/kubernetes"
        );
        assert_eq!(
            conv_line("\t@@include /etc/aide.local"),
            "\t@@include /hostroot/etc/aide.local"
        );
    }

    #[test]
    fn database_options_in_every_spelling() {
        assert_eq!(
            conv_line("database_in=file:/var/lib/aide/aide.db"),
            "database_in=file:@@{DBDIR}/aide.db.gz"
        );
        assert_eq!(
            conv_line("database = file:/var/lib/aide/aide.db"),
            "database=file:@@{DBDIR}/aide.db.gz"
        );
        assert_eq!(
            conv_line("database_out =file:/var/lib/aide/aide.db.new"),
            "database_out=file:@@{DBDIR}/aide.db.gz.new"
        );
        assert_eq!(
            conv_line("database_new=file:/var/lib/aide/aide.db.new"),
            "database_new=file:@@{DBDIR}/aide.db.gz.new"
        );
        assert_eq!(
            conv_line("report_url = file:/var/log/aide/aide.log"),
            "report_url=file:@@{LOGDIR}/aide.log.new"
        );
        // Other options starting with the same letters, and other report URLs, are kept.
        for keep in [
            "database_attrs = Checksums",
            "database_add_metadata=true",
            "report_url=stdout",
            "report_url=stderr",
            "gzip_dbout=no",
            "root_prefix=/mnt",
            "@@define DBDIRX /var/lib",
            "@@define LOGDIRECTORY /var/log",
            "@@define FOO /etc",
        ] {
            assert_eq!(conv_line(keep), keep);
        }
    }

    #[test]
    fn comments_macros_and_blank_lines_are_kept() {
        let input = "# /etc/passwd\n#database=file:/x\n\n@@ifhost node-1\n/etc/a R\n@@else\n\
                     /etc/b R\n@@endif\n@@x_include_setenv PATH /bin:/usr/bin\n  # indented /etc\n\
                     database=file:/var/lib/aide/aide.db.gz\ndatabase_out=file:/o\n\
                     report_url=file:/l\n@@define DBDIR /d\n@@define LOGDIR /l";
        let out = convert_user_config(input);
        // Nothing added: DBDIR is used (database line) before its define, so ours goes first.
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], DEFINE_DBDIR);
        assert_eq!(lines[1], DEFINE_LOGDIR);
        assert_eq!(
            &lines[2..],
            &[
                "# /etc/passwd",
                "#database=file:/x",
                "",
                "@@ifhost node-1",
                "/hostroot/etc/a R",
                "@@else",
                "/hostroot/etc/b R",
                "@@endif",
                "@@x_include_setenv PATH /bin:/usr/bin",
                "  # indented /etc",
                "database=file:@@{DBDIR}/aide.db.gz",
                "database_out=file:@@{DBDIR}/aide.db.gz.new",
                "report_url=file:@@{LOGDIR}/aide.log.new",
                DEFINE_DBDIR,
                DEFINE_LOGDIR,
                OWN_FILES_EXCLUDE,
            ]
        );
        validate(&out).unwrap();
    }

    #[test]
    fn crlf_lines_keep_their_carriage_return() {
        let out = conv_line("/etc/x R\r");
        assert_eq!(out, "/hostroot/etc/x R\r");
        assert_eq!(
            conv_line("database=file:/x\r"),
            "database=file:@@{DBDIR}/aide.db.gz\r"
        );
    }

    #[test]
    fn includes_move_under_the_host_root() {
        assert_eq!(
            conv_line("@@include /etc/aide.local.conf"),
            "@@include /hostroot/etc/aide.local.conf"
        );
        // Directory form: the included rules were written for the node too.
        assert_eq!(
            conv_line("@@x_include /etc/aide/aide.conf.d ^[a-zA-Z0-9_-]+$"),
            "@@x_include /hostroot/etc/aide/aide.conf.d ^[a-zA-Z0-9_-]+$ /hostroot"
        );
        assert_eq!(
            conv_line("@@include /etc/aide.d .*\\.conf$  "),
            "@@include /hostroot/etc/aide.d .*\\.conf$ /hostroot  "
        );
        assert_eq!(
            conv_line("@@include\t/etc/aide.d\t.* /opt"),
            "@@include\t/hostroot/etc/aide.d\t.* /hostroot/opt"
        );
        assert_eq!(
            conv_line("@@include /etc/my\\ aide.d .*"),
            "@@include /hostroot/etc/my\\ aide.d .* /hostroot"
        );
        for keep in [
            "@@include /hostroot/etc/aide.local.conf",
            "@@x_include /hostroot/etc/aide.d .*",
            "@@include @@{CONFDIR}/x.conf",
            "@@x_include_setenv UPAC_settingsd /etc/aide/aide.settings.d",
        ] {
            assert_eq!(conv_line(keep), keep);
        }
    }

    #[test]
    fn missing_database_and_log_settings_are_added() {
        let out = convert_user_config("NORMAL = p+sha512\n/etc NORMAL\n");
        assert_eq!(
            out,
            format!(
                "{DEFINE_DBDIR}\n{DEFINE_LOGDIR}\nNORMAL = p+sha512\n/hostroot/etc NORMAL\n\
                 database=file:@@{{DBDIR}}/aide.db.gz\ndatabase_out=file:@@{{DBDIR}}/aide.db.gz.new\n\
                 report_url=file:@@{{LOGDIR}}/aide.log.new\n{OWN_FILES_EXCLUDE}\n"
            )
        );
        let c = load(&out);
        assert_eq!(
            c.options.database_in,
            Some(Url::File("/hostroot/etc/kubernetes/aide.db.gz".into()))
        );
        assert_eq!(
            c.options.database_out,
            Some(Url::File("/hostroot/etc/kubernetes/aide.db.gz.new".into()))
        );
        assert_eq!(
            c.options.report.urls[0].url,
            Url::File("/hostroot/etc/kubernetes/aide.log.new".into())
        );
        // Only what is missing: a 0.18 database_in counts as the input database.
        let out = convert_user_config("database_in=file:/db\nreport_url=stdout\n/etc R");
        assert!(!out.contains("\ndatabase="), "{out}");
        assert!(
            out.ends_with(
                "/hostroot/etc R\ndatabase_out=file:@@{DBDIR}/aide.db.gz.new\n\
                 report_url=file:@@{LOGDIR}/aide.log.new\n!/hostroot/etc/kubernetes/aide\\..*"
            ),
            "{out}"
        );
        // The added report_url comes after the user's report settings, so they apply to it.
        let c = load(&convert_user_config("report_level=list_entries\n/etc R"));
        assert_eq!(
            c.options.report.urls[0].level,
            fio_core::options::ReportLevel::ListEntries
        );
    }

    #[test]
    fn defines_are_not_duplicated_when_they_come_first() {
        let out = convert_user_config("@@define DBDIR /a\n@@define LOGDIR /b\n/etc R");
        assert_eq!(out.matches("@@define DBDIR").count(), 1, "{out}");
        assert_eq!(out.matches("@@define LOGDIR").count(), 1, "{out}");
        assert!(
            out.starts_with(&format!(
                "{DEFINE_DBDIR}\n{DEFINE_LOGDIR}\n/hostroot/etc R\n"
            )),
            "{out}"
        );
        // Only LOGDIR defined: DBDIR's define is added, LOGDIR's is not.
        let out = convert_user_config("@@define LOGDIR /b\n/etc R");
        assert_eq!(out.matches("@@define LOGDIR").count(), 1, "{out}");
        assert!(
            out.starts_with(&format!(
                "{DEFINE_DBDIR}\n{DEFINE_LOGDIR}\n/hostroot/etc R\n"
            )),
            "{out}"
        );
        // A define after the first use does not count: ours goes first.
        let out = convert_user_config("database=file:/db\n@@define DBDIR /a\n/etc R");
        assert!(
            out.starts_with(&format!("{DEFINE_DBDIR}\n{DEFINE_LOGDIR}\ndatabase=")),
            "{out}"
        );
        assert_eq!(
            load(&out).options.database_in,
            Some(Url::File(format!("{KUBE_DIR}/aide.db.gz").into()))
        );
    }

    #[test]
    fn default_config_is_upstreams_and_valid() {
        assert!(DEFAULT_CONFIG.starts_with(DEFINE_DBDIR));
        assert!(DEFAULT_CONFIG.ends_with("/hostroot/etc/    CONTENT_EX"));
        assert!(DEFAULT_CONFIG.contains("\n/hostroot/usr/    CONTENT_EX\n"));
        assert!(KUBE_DIR.starts_with(HOSTROOT));
        validate(DEFAULT_CONFIG).unwrap();
        // Already in the daemon's form: converting changes nothing.
        assert_eq!(convert_user_config(DEFAULT_CONFIG), DEFAULT_CONFIG);
        let c = load(DEFAULT_CONFIG);
        assert!(c.options.gzip_dbout);
        assert!(records(&c, "/hostroot/etc/passwd"));
        assert!(!records(&c, "/hostroot/etc/kubernetes/aide.db.gz"));
        assert_eq!(DEFAULT_CONFIG, reference("upstream-default-aide.conf"));
    }

    #[test]
    fn rhel8_config_converts_and_validates() {
        let text = reference("rhel8-aide.conf");
        let out = convert_user_config(&text);
        validate(&out).unwrap();
        assert_eq!(convert_user_config(&out), out, "conversion is idempotent");
        let rule_lines = |t: &str| {
            t.lines()
                .filter(|l| {
                    ["/", "!/", "=/"]
                        .iter()
                        .any(|m| l.trim_start().starts_with(m))
                })
                .count()
        };
        assert_eq!(rule_lines(&text), 151);
        let mut rules = 0;
        for l in out.lines() {
            if let Statement::Rule { path, .. } = read_line(l).statement {
                rules += 1;
                assert!(at_hostroot(&l[path]), "{l}");
            }
        }
        // Plus our exclusion of the daemon's files.
        assert_eq!(rules, 152);
        // One line more: only the exclusion was added (it has every setting), nothing dropped.
        assert_eq!(out.lines().count(), text.lines().count() + 1);
        let c = load(&out);
        assert_eq!(
            c.options.database_in,
            Some(Url::File("/hostroot/etc/kubernetes/aide.db.gz".into()))
        );
        assert_eq!(
            c.options.database_out,
            Some(Url::File("/hostroot/etc/kubernetes/aide.db.gz.new".into()))
        );
        assert_eq!(
            c.options.report.urls[0].url,
            Url::File("/hostroot/etc/kubernetes/aide.log.new".into())
        );
        assert!(records(&c, "/hostroot/etc/passwd"));
        assert!(records(&c, "/hostroot/usr/bin/ls"));
        assert!(!records(&c, "/etc/passwd"));
        assert!(!records(&c, "/hostroot/etc/mtab"));
    }

    #[test]
    fn debian12_config_converts_and_validates_without_running_includes() {
        let text = reference("debian12/aide.conf");
        let out = convert_user_config(&text);
        assert!(
            out.contains("\n@@x_include /hostroot/etc/aide/aide.conf.d ^[a-zA-Z0-9_-]+$ /hostroot"),
            "{out}"
        );
        assert!(out.contains("\ndatabase_in=file:@@{DBDIR}/aide.db.gz\n"));
        assert!(out.contains("\ndatabase_new=file:@@{DBDIR}/aide.db.gz.new\n"));
        // Debian's configuration runs the executable files of aide.conf.d: the daemon never
        // runs a program of the node, so the operator refuses it, naming the line.
        let line = out
            .lines()
            .position(|l| l.starts_with("@@x_include /hostroot/etc/aide/aide.conf.d"))
            .unwrap()
            + 1;
        let err = validate(&out).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("aide.conf:{line}: '@@x_include' is refused")),
            "{err}"
        );
    }

    #[test]
    fn validate_checks_the_evaluated_database_and_report_files() {
        // The conversion rewrites report_url=file: lines; one hidden in a macro is evaluated.
        let text = convert_user_config(
            "@@define V file:/hostroot/etc/kubernetes/kubelet.conf\nreport_url=@@{V}\n/etc R",
        );
        let line = text.lines().position(|l| l == "report_url=@@{V}").unwrap() + 1;
        let err = validate(&text).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("aide.conf:{line}: report_url must be stdout, stderr or file:/hostroot/etc/kubernetes/aide.log.new")),
            "{err}"
        );
        // Text that bypasses the conversion is checked the same way.
        let text =
            format!("{DEFAULT_CONFIG}\n@@define X file:/hostroot/etc/shadow\nreport_url=@@{{X}}");
        let line = text.lines().count();
        let err = validate(&text).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("aide.conf:{line}: report_url must be")),
            "{err}"
        );
    }

    #[test]
    fn sha513_fails_with_the_line_number() {
        let text = format!("{DEFAULT_CONFIG}\nBROKEN = p+u+sha513\n/hostroot/srv BROKEN");
        let line = text.lines().count() - 1;
        let err = validate(&text).unwrap_err().to_string();
        assert!(err.starts_with(&format!("aide.conf:{line}: ")), "{err}");
        assert!(err.contains("unknown attribute 'sha513'"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported_with_the_line() {
        let err = validate("/etc R\n@@else\n").unwrap_err().to_string();
        assert!(err.starts_with("aide.conf:2: syntax error"), "{err}");
        let err = validate("database_in=gopher:/x\n").unwrap_err().to_string();
        assert!(err.starts_with("aide.conf:1: "), "{err}");
    }

    #[test]
    fn includes_are_neither_read_nor_run_by_validate() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let prog = dir.path().join("prog");
        std::fs::write(
            &prog,
            format!("#!/bin/sh\ntouch {}\necho '/x R'\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o700)).unwrap();
        let text = format!(
            "@@x_include {}\n@@include /nonexistent/aide.local\n/etc R",
            prog.display()
        );
        let err = validate(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("aide.conf:1: '@@x_include' is refused"),
            "{err}"
        );
        assert!(!marker.exists(), "validate ran an @@x_include program");
        let text = "@@include /nonexistent/aide.local\n/etc R";
        validate(&format!("{DEFAULT_CONFIG}\n{text}")).unwrap();
        // An include alone in an @@if branch: the branch stays non-empty.
        validate(&format!(
            "{DEFAULT_CONFIG}\n@@ifhost nosuchhost\n@@include /nonexistent\n@@endif\n/etc R"
        ))
        .unwrap();
        // Before the first include everything is checked; after it, a group the included
        // files may define is left to the node.
        let err = validate("X = sha513\n@@include /nonexistent\n/etc X")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("aide.conf:1: unknown attribute 'sha513'"),
            "{err}"
        );
        validate("@@include /nonexistent\n/etc FROM_INCLUDE").unwrap();
        // Syntax is checked everywhere.
        let err = validate("@@include /nonexistent\n/etc R\n@@endif")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("aide.conf:3: syntax error"), "{err}");
        // Without includes, an undefined group is an error.
        assert!(validate("/etc FROM_INCLUDE")
            .unwrap_err()
            .to_string()
            .starts_with("aide.conf:1: "));
    }

    #[test]
    fn map_hostroot_replaces_whole_leading_components() {
        let d = Path::new("/tmp/node-1");
        assert_eq!(map_hostroot("/hostroot/etc", d), "/tmp/node-1/etc");
        assert_eq!(
            map_hostroot("@@define DBDIR /hostroot/etc/kubernetes", d),
            "@@define DBDIR /tmp/node-1/etc/kubernetes"
        );
        assert_eq!(map_hostroot("/hostrootx", d), "/hostrootx");
        assert_eq!(map_hostroot("/hostrootx/etc R", d), "/hostrootx/etc R");
        assert_eq!(
            map_hostroot("/srv/hostroot/etc R", d),
            "/srv/hostroot/etc R"
        );
        assert_eq!(map_hostroot("!/hostroot/var", d), "!/tmp/node-1/var");
        assert_eq!(map_hostroot("=/hostroot$ R", d), "=/tmp/node-1$ R");
        assert_eq!(
            map_hostroot("/hostroot R\n/hostroot", d),
            "/tmp/node-1 R\n/tmp/node-1"
        );
        assert_eq!(
            map_hostroot(
                "database=file:/hostroot/db\nreport_url=file:///hostroot/l",
                d
            ),
            "database=file:/tmp/node-1/db\nreport_url=file:///tmp/node-1/l"
        );
        assert_eq!(
            map_hostroot("/hostroot/etc", Path::new("/tmp/n/")),
            "/tmp/n/etc"
        );
        assert_eq!(
            map_hostroot("/hostroot/etc R\n/hostroot R", Path::new("/")),
            "/etc R\n/ R"
        );
    }

    #[test]
    fn map_hostroot_escapes_the_directory_in_rules_only() {
        let d = Path::new("/tmp/.tmpA+b");
        assert_eq!(map_hostroot("/hostroot/etc R", d), "/tmp/\\.tmpA\\+b/etc R");
        assert_eq!(
            map_hostroot("@@define DBDIR /hostroot/etc/kubernetes", d),
            "@@define DBDIR /tmp/.tmpA+b/etc/kubernetes"
        );
        assert_eq!(
            map_hostroot("@@include /hostroot/etc/d .* /hostroot", d),
            "@@include /tmp/.tmpA+b/etc/d .* /tmp/\\.tmpA\\+b"
        );
    }

    #[test]
    fn mapped_default_config_points_at_the_simulated_node() {
        let dir = PathBuf::from("/tmp/sim+node");
        let c = load(&map_hostroot(DEFAULT_CONFIG, &dir));
        assert_eq!(
            c.options.database_in,
            Some(Url::File("/tmp/sim+node/etc/kubernetes/aide.db.gz".into()))
        );
        assert!(records(&c, "/tmp/sim+node/etc/passwd"));
        assert!(!records(&c, "/tmp/simnode/etc/passwd"));
        assert!(!records(&c, "/tmp/sim+node/etc/kubernetes/aide.db.gz"));
        assert!(!records(&c, "/hostroot/etc/passwd"));
    }

    /// One reading of the language: what the conversion takes for a rule, an option or an
    /// include is what the scanner's lexer takes for one, and a line it refuses is left as
    /// written for validation to name (a second tokenizer could read it otherwise and leave a
    /// rule off the host root).
    #[test]
    fn lines_are_read_by_the_scanners_lexer() {
        let text = "database\t=file:/x\n  /etc\\ x p\n=/boot$ p\n@@include\t/etc/aide.d\n";
        let out = convert_user_config(text);
        // After the two `@@define`s the added lines need.
        let lines: Vec<&str> = out.lines().skip(2).collect();
        assert_eq!(lines[0], "database\t=file:/x", "{out}");
        assert_eq!(lines[1], "  /hostroot/etc\\ x p");
        assert_eq!(lines[2], "=/hostroot/boot$ p");
        assert_eq!(lines[3], "@@include\t/hostroot/etc/aide.d");
        let err = validate(&out).unwrap_err().to_string();
        assert!(err.starts_with("aide.conf:3: "), "{err}");
    }

    #[test]
    fn config_hash_is_sha256_hex() {
        assert_eq!(
            config_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            config_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(config_hash(DEFAULT_CONFIG), config_hash(DEFAULT_CONFIG));
        assert_ne!(
            config_hash(DEFAULT_CONFIG),
            config_hash(&format!("{DEFAULT_CONFIG}\n"))
        );
    }
}
