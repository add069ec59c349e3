//! Evaluation of a parsed configuration (AIDE's `conf_eval.c` and `commandconf.c`): `@@if`
//! branches, `@@include` and `@@x_include` (through the [`Host`]), groups, options, rules.

use super::host::{is_unavailable, FileStat, Host};
use super::lex::{self, BoolOp, Opt};
use super::parse::{AttrExpr, AttrOp, Cond, Frag, Located, Parser, Stmt, Value};
use super::{attr_names, lossy, os_err, Config, ConfigError, Origin, Origins};
use crate::attr::{Attr, AttrSet, ATTRS, GROUP_H, HASHES};
use crate::options::{LogLevel, Options, ReportFormat, ReportLevel, ReportOptions, ReportUrl, Url};
use crate::select::{Regex, Restriction, RuleKind, RuleSetBuilder};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Every hash attribute AIDE knows (its `get_hashes(true)`).
const ALL_HASHES: AttrSet =
    AttrSet(HASHES.0 | AttrSet::of(&[Attr::Stribog256, Attr::Stribog512]).0);

/// Hashes AIDE knows but this scanner does not compute (AIDE ignores those it was not
/// compiled with, with a warning); `H` is the set it does compute.
const UNSUPPORTED_HASHES: AttrSet = AttrSet(ALL_HASHES.0 & !GROUP_H.0);

/// e2fsattrs flag letters (lib/e2p/pf.c order) and their `FS_IOC_GETFLAGS` bits.
const E2FS_FLAGS: [(u8, u64); 22] = [
    (b's', 0x0000_0001),
    (b'u', 0x0000_0002),
    (b'S', 0x0000_0008),
    (b'D', 0x0001_0000),
    (b'i', 0x0000_0010),
    (b'a', 0x0000_0020),
    (b'd', 0x0000_0040),
    (b'A', 0x0000_0080),
    (b'c', 0x0000_0004),
    (b'E', 0x0000_0800),
    (b'j', 0x0000_4000),
    (b'I', 0x0000_1000),
    (b't', 0x0000_8000),
    (b'T', 0x0002_0000),
    (b'e', 0x0008_0000),
    (b'C', 0x0080_0000),
    (b'x', 0x0200_0000),
    (b'F', 0x4000_0000),
    (b'N', 0x1000_0000),
    (b'P', 0x2000_0000),
    (b'V', 0x0010_0000),
    (b'm', 0x0000_0400),
];

/// AIDE 0.16's `verbose` levels onto 0.17+'s `report_level`.
fn verbose_to_report_level(v: u8) -> ReportLevel {
    match v {
        0 => ReportLevel::Minimal,
        1 => ReportLevel::Summary,
        2..=4 => ReportLevel::ListEntries,
        5 => ReportLevel::ChangedAttributes,
        6 => ReportLevel::AddedRemovedAttributes,
        _ => ReportLevel::AddedRemovedEntries,
    }
}

/// Where a statement is, for messages.
#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a str,
    line: usize,
}

impl At<'_> {
    fn err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            line: self.line,
            msg: msg.into(),
        }
    }
    fn exec_err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::Exec {
            file: self.file.to_string(),
            line: self.line,
            msg: msg.into(),
        }
    }
    fn prefix(&self) -> String {
        format!("{}:{}: ", self.file, self.line)
    }
    fn needs_host(&self, what: impl Into<String>) -> ConfigError {
        ConfigError::NeedsHost {
            file: self.file.to_string(),
            line: self.line,
            what: what.into(),
        }
    }
    /// An I/O error of the host: [`ConfigError::NeedsHost`] when the host has no files,
    /// else the message AIDE prints.
    fn io_err(&self, e: &std::io::Error, what: &str, msg: impl FnOnce() -> String) -> ConfigError {
        if is_unavailable(e) {
            self.needs_host(what)
        } else {
            self.err(msg())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlKind {
    File,
    Stdout,
    Stdin,
    Stderr,
    Fd,
    Ftp,
    Http,
    Https,
    Syslog,
}

impl UrlKind {
    fn name(self) -> &'static str {
        match self {
            UrlKind::File => "file",
            UrlKind::Stdout => "stdout",
            UrlKind::Stdin => "stdin",
            UrlKind::Stderr => "stderr",
            UrlKind::Fd => "fd",
            UrlKind::Ftp => "ftp",
            UrlKind::Http => "http",
            UrlKind::Https => "https",
            UrlKind::Syslog => "syslog",
        }
    }
}

pub(super) struct Loader<'h> {
    host: &'h dyn Host,
    hostname: Option<String>,
    defsyms: HashMap<Vec<u8>, Option<Vec<u8>>>,
    groups: HashMap<Vec<u8>, AttrSet>,
    /// `@@x_include_setenv` variables, in definition order.
    env: Vec<(Vec<u8>, Vec<u8>)>,
    rules: RuleSetBuilder,
    warnings: Vec<String>,
    opts: Options,
    /// The report settings as they are now; a `report_url` takes a copy (as AIDE does).
    cur: ReportOptions,
    urls: Vec<(ReportUrl, ReportOptions, (UrlKind, Vec<u8>))>,
    origins: Origins,
    db_in_set: bool,
    db_out_set: bool,
    db_new_set: bool,
    log_level_set: bool,
    root_prefix_set: bool,
    num_workers_set: bool,
}

impl<'h> Loader<'h> {
    pub(super) fn new(host: &'h dyn Host, hostname: Option<String>) -> Loader<'h> {
        let mut groups = HashMap::new();
        for info in ATTRS.iter() {
            if let Some(n) = info.config_name {
                groups.insert(n.as_bytes().to_vec(), AttrSet::of(&[info.attr]));
            }
        }
        for (n, v) in crate::attr::predefined_groups() {
            groups.insert(n.as_bytes().to_vec(), v);
        }
        Loader {
            host,
            hostname,
            defsyms: HashMap::new(),
            groups,
            env: Vec::new(),
            rules: RuleSetBuilder::new(),
            warnings: Vec::new(),
            opts: Options::default(),
            cur: ReportOptions::default(),
            urls: Vec::new(),
            origins: Origins::default(),
            db_in_set: false,
            db_out_set: false,
            db_new_set: false,
            log_level_set: false,
            root_prefix_set: false,
            num_workers_set: false,
        }
    }

    fn warn(&mut self, at: At<'_>, msg: impl AsRef<str>) {
        self.warnings
            .push(format!("{}{}", at.prefix(), msg.as_ref()));
    }

    pub(super) fn run_source(
        &mut self,
        text: &[u8],
        name: &str,
        depth: usize,
        prefix: Option<&[u8]>,
    ) -> Result<(), ConfigError> {
        let stmts = Parser::new(text, name, &mut self.warnings).parse()?;
        self.eval_block(&stmts, name, depth, prefix)
    }

    fn eval_block(
        &mut self,
        stmts: &[Located],
        file: &str,
        depth: usize,
        prefix: Option<&[u8]>,
    ) -> Result<(), ConfigError> {
        for s in stmts {
            let at = At { file, line: s.line };
            match &s.stmt {
                Stmt::Option { opt, value } => self.eval_option(at, *opt, value)?,
                Stmt::Group { name, expr } => {
                    let v = self.eval_attrs(at, expr)?;
                    self.groups.insert(name.clone(), v);
                }
                Stmt::Rule {
                    kind,
                    path,
                    restriction,
                    attrs,
                } => self.eval_rule(
                    at,
                    &s.text,
                    *kind,
                    path,
                    restriction.as_deref(),
                    attrs.as_ref(),
                    prefix,
                )?,
                Stmt::Define { name, value } => {
                    let v = value.as_ref().map(|v| self.eval_string(v));
                    self.defsyms.insert(name.clone(), v);
                }
                Stmt::Undef { name } => {
                    self.defsyms.remove(name);
                }
                Stmt::SetEnv { name, value } => {
                    let v = self.eval_string(value);
                    match self.env.iter_mut().find(|(n, _)| n == name) {
                        Some(e) => e.1 = v,
                        None => self.env.push((name.clone(), v)),
                    }
                }
                Stmt::If { cond, then, els } => {
                    if self.eval_cond(at, cond)? {
                        self.eval_block(then, file, depth, prefix)?;
                    } else if let Some(els) = els {
                        self.eval_block(els, file, depth, prefix)?;
                    }
                }
                Stmt::Include {
                    exec,
                    path,
                    rx,
                    prefix: new_prefix,
                } => self.eval_include(
                    at,
                    depth + 1,
                    prefix,
                    *exec,
                    path,
                    rx.as_ref(),
                    new_prefix.as_ref(),
                )?,
            }
        }
        Ok(())
    }

    fn eval_string(&self, frags: &[Frag]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frags {
            match f {
                Frag::Str(s) => out.extend_from_slice(s),
                Frag::Var(name) => match self.defsyms.get(name) {
                    Some(v) => out.extend_from_slice(v.as_deref().unwrap_or(b"")),
                    None if name == b"HOSTNAME" => {
                        if let Some(h) = &self.hostname {
                            out.extend_from_slice(h.as_bytes());
                        }
                    }
                    None => {}
                },
            }
        }
        out
    }

    fn eval_attrs(&self, at: At<'_>, expr: &AttrExpr) -> Result<AttrSet, ConfigError> {
        let mut v = AttrSet::EMPTY;
        for (op, name) in expr {
            let Some(&g) = self.groups.get(name) else {
                let text: String = expr
                    .iter()
                    .map(|(op, n)| {
                        let o = match op {
                            AttrOp::First => "",
                            AttrOp::Plus => "+",
                            AttrOp::Minus => "-",
                        };
                        format!("{}{}", o, lossy(n))
                    })
                    .collect();
                return Err(at.err(format!(
                    "unknown attribute '{}' in expression '{}'",
                    lossy(name),
                    text
                )));
            };
            v = match op {
                AttrOp::First => g,
                AttrOp::Plus => v.union(g),
                AttrOp::Minus => v.minus(g),
            };
        }
        Ok(v)
    }

    fn eval_cond(&mut self, at: At<'_>, c: &Cond) -> Result<bool, ConfigError> {
        Ok(match c {
            Cond::Not(c) => !self.eval_cond(at, c)?,
            Cond::Func(op, arg) => {
                let s = self.eval_string(arg);
                match op {
                    BoolOp::Defined => self.defsyms.contains_key(&s),
                    BoolOp::Exists => {
                        match self.host.stat(Path::new(OsStr::from_bytes(&s)), true) {
                            Ok(_) => true,
                            Err(e) if is_unavailable(&e) => {
                                return Err(at.needs_host(format!("'exists {}'", lossy(&s))))
                            }
                            Err(_) => false,
                        }
                    }
                    BoolOp::Hostname => match &self.hostname {
                        Some(h) => h.as_bytes() == s.as_slice(),
                        None => {
                            self.warn(at, "hostname not available; ifhost and ifnhost always evaluate to 'false'");
                            false
                        }
                    },
                }
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_rule(
        &mut self,
        at: At<'_>,
        line_text: &str,
        kind: RuleKind,
        path: &[Frag],
        restriction: Option<&[Vec<u8>]>,
        attrs: Option<&AttrExpr>,
        prefix: Option<&[u8]>,
    ) -> Result<(), ConfigError> {
        let rx = self.eval_string(path);
        let mut rs = Restriction::NONE;
        for r in restriction.unwrap_or(&[]) {
            if r.first() == Some(&b'0') {
                continue;
            }
            match (
                r.len(),
                r.first().and_then(|&c| Restriction::from_letter(c)),
            ) {
                (1, Some(x)) => rs = rs.union(x),
                _ => return Err(at.err(format!("invalid restriction '{}'", lossy(r)))),
            }
        }
        let a = match attrs {
            Some(e) => self.eval_attrs(at, e)?,
            None => AttrSet::EMPTY,
        };
        let mut regex = prefix.map(<[u8]>::to_vec).unwrap_or_default();
        regex.extend_from_slice(&rx);
        // AIDE only warns about hashes it was built without and records the file without
        // them; a baseline silently missing a digest the admin asked for is worse than an error.
        let unsupported = a.intersect(UNSUPPORTED_HASHES);
        if !unsupported.is_empty() {
            return Err(at.err(format!(
                "hash algorithm(s) not supported by fio-scanner: {} (remove them from the rule)",
                attr_names(unsupported)
            )));
        }
        if a.contains(Attr::Compressed) && a.intersect(GROUP_H).is_empty() {
            self.warn(
                at,
                "ignore 'compressed' attribute (no hashsum attributes are set)",
            );
        }
        self.rules
            .add(kind, &regex, rs, a, at.file, at.line, line_text)
            .map_err(|m| at.err(m))
    }

    fn eval_bool(&self, at: At<'_>, v: &[u8]) -> Result<bool, ConfigError> {
        match v {
            b"true" | b"yes" => Ok(true),
            b"false" | b"no" => Ok(false),
            _ => Err(at.err(format!(
                "unrecognized bool value: '{}' (expecting 'true', 'yes','false' or 'no')",
                lossy(v)
            ))),
        }
    }

    fn parse_url(&self, at: At<'_>, val: &[u8]) -> Result<(UrlKind, Vec<u8>), ConfigError> {
        let (ty, rest): (&[u8], &[u8]) = match val.iter().position(|&c| c == b':') {
            Some(k) => (&val[..k], &val[k + 1..]),
            None => (val, b""),
        };
        let kind = match ty {
            b"file" => UrlKind::File,
            b"stdout" => UrlKind::Stdout,
            b"stdin" => UrlKind::Stdin,
            b"stderr" => UrlKind::Stderr,
            b"fd" => UrlKind::Fd,
            b"ftp" => UrlKind::Ftp,
            b"http" => UrlKind::Http,
            b"https" => UrlKind::Https,
            b"syslog" => UrlKind::Syslog,
            _ => return Err(at.err(format!("unknown URL-type: '{}'", lossy(ty)))),
        };
        let value = match kind {
            UrlKind::File if rest.starts_with(b"///") => rest[2..].to_vec(),
            UrlKind::File if rest.starts_with(b"//") => {
                let r = &rest[2..];
                let Some(k) = r.iter().position(|&c| c == b'/') else {
                    return Err(at.err(format!("invalid file-URL '{}': no path after hostname", lossy(val))));
                };
                let host = &r[..k];
                let ok = host == b"localhost" || self.hostname.as_deref().is_some_and(|h| h.as_bytes() == host);
                if !ok {
                    return Err(at.err(format!(
                        "invalid file-URL '{}': cannot use hostname other than 'localhost' or '{}'",
                        lossy(val),
                        self.hostname.as_deref().unwrap_or("(null)")
                    )));
                }
                r[k..].to_vec()
            }
            UrlKind::Ftp | UrlKind::Http | UrlKind::Https => {
                return Err(at.err("http, https and ftp URL support not compiled in, recompile AIDE with '--with-curl'"))
            }
            _ => rest.to_vec(),
        };
        Ok((kind, value))
    }

    fn to_url(kind: UrlKind, value: &[u8]) -> Url {
        match kind {
            UrlKind::File => Url::File(PathBuf::from(OsString::from_vec(value.to_vec()))),
            UrlKind::Stdout => Url::Stdout,
            UrlKind::Stderr => Url::Stderr,
            UrlKind::Stdin => Url::Stdin,
            // atoi()
            _ => {
                let s = lossy(value);
                let t = s.trim_start();
                let (neg, digits) = match t.as_bytes().first() {
                    Some(b'-') => (true, &t[1..]),
                    Some(b'+') => (false, &t[1..]),
                    _ => (false, t),
                };
                let n: i64 = digits
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .fold(0i64, |a, d| {
                        a.saturating_mul(10).saturating_add((d - b'0') as i64)
                    });
                Url::Fd((if neg { -n } else { n }) as i32)
            }
        }
    }

    fn eval_db(&mut self, at: At<'_>, opt: Opt, val: &[u8]) -> Result<(), ConfigError> {
        let (set, name) = match opt {
            Opt::DatabaseIn => (self.db_in_set, "database_in"),
            Opt::DatabaseOut => (self.db_out_set, "database_out"),
            _ => (self.db_new_set, "database_new"),
        };
        if set {
            // AIDE keeps the first value and does not even look at later ones.
            return Ok(());
        }
        let (kind, value) = self.parse_url(at, val)?;
        let bad = match opt {
            Opt::DatabaseOut => matches!(kind, UrlKind::Stdin | UrlKind::Stderr | UrlKind::Syslog),
            _ => matches!(kind, UrlKind::Stdout | UrlKind::Stderr | UrlKind::Syslog),
        };
        if bad {
            return Err(at.err(format!(
                "'{}': unsupported URL-type: '{}'",
                name,
                kind.name()
            )));
        }
        let url = Some(Self::to_url(kind, &value));
        let origin = Some(Origin::at(at));
        match opt {
            Opt::DatabaseIn => {
                self.origins.database_in = origin;
                self.opts.database_in = url;
                self.db_in_set = true;
            }
            Opt::DatabaseOut => {
                self.origins.database_out = origin;
                self.opts.database_out = url;
                self.db_out_set = true;
            }
            _ => {
                self.origins.database_new = origin;
                self.opts.database_new = url;
                self.db_new_set = true;
            }
        }
        Ok(())
    }

    fn add_report_url(
        &mut self,
        at: Option<At<'_>>,
        kind: UrlKind,
        value: Vec<u8>,
    ) -> Result<(), ConfigError> {
        let fail = |m: String| match at {
            Some(at) => at.err(m),
            None => ConfigError::Invalid {
                file: "(default)".into(),
                line: 1,
                msg: m,
            },
        };
        match kind {
            UrlKind::Stdin => return Err(fail("unsupported report URL-type: 'stdin'".into())),
            UrlKind::Syslog => {
                return Err(fail(format!(
                    "report_url 'syslog:{}' is not supported by this scanner (use file:, stdout, stderr or fd:)",
                    lossy(&value)
                )))
            }
            _ => {}
        }
        if self
            .urls
            .iter()
            .any(|(_, _, (k, v))| *k == kind && *v == value)
        {
            if let Some(at) = at {
                self.warn(
                    at,
                    format!("report_url '{}' already defined (ignoring)", lossy(&value)),
                );
            }
            return Ok(());
        }
        let url = ReportUrl {
            url: Self::to_url(kind, &value),
            level: self.cur.level,
            format: self.cur.format,
        };
        self.urls.push((url, self.cur.clone(), (kind, value)));
        self.origins.report_urls.push(at.map(Origin::at));
        Ok(())
    }

    fn eval_option(&mut self, at: At<'_>, opt: Opt, value: &Value) -> Result<(), ConfigError> {
        let s = match value {
            Value::Str(f) => self.eval_string(f),
            Value::Attr(e) => {
                let a = self.eval_attrs(at, e)?;
                match opt {
                    Opt::DatabaseAttrs => {
                        let invalid = a.minus(ALL_HASHES);
                        if !invalid.is_empty() {
                            return Err(
                                at.err(format!("invalid attribute(s): {}", attr_names(invalid)))
                            );
                        }
                        let unsupported = a.intersect(UNSUPPORTED_HASHES);
                        if !unsupported.is_empty() {
                            self.warn(
                                at,
                                format!(
                                    "ignoring unsupported hash algorithm(s): {}",
                                    attr_names(unsupported)
                                ),
                            );
                        }
                        self.cur.database_attrs = a.minus(unsupported);
                    }
                    Opt::ReportIgnoreAddedAttrs => self.cur.ignore_added_attrs = a,
                    Opt::ReportIgnoreRemovedAttrs => self.cur.ignore_removed_attrs = a,
                    Opt::ReportIgnoreChangedAttrs => self.cur.ignore_changed_attrs = a,
                    Opt::ReportForceAttrs => self.cur.force_attrs = a,
                    _ => {
                        // A string option whose value lexed as an expression cannot happen.
                        return Err(at.err(format!(
                            "'{}' expects a string value",
                            lex::option_name(opt)
                        )));
                    }
                }
                return Ok(());
            }
        };
        match opt {
            Opt::DatabaseIn | Opt::DatabaseOut | Opt::DatabaseNew => self.eval_db(at, opt, &s)?,
            Opt::ReportUrl => {
                let (kind, value) = self.parse_url(at, &s)?;
                self.add_report_url(Some(at), kind, value)?;
            }
            Opt::RootPrefix => {
                if !self.root_prefix_set {
                    let mut v = s;
                    if v.last() == Some(&b'/') {
                        v.pop();
                    }
                    self.opts.root_prefix = v;
                    self.root_prefix_set = true;
                }
            }
            Opt::GzipDbout => self.opts.gzip_dbout = self.eval_bool(at, &s)?,
            Opt::DatabaseAddMetadata => self.opts.database_add_metadata = self.eval_bool(at, &s)?,
            Opt::AclNoSymlinkFollow => self.opts.acl_no_symlink_follow = self.eval_bool(at, &s)?,
            Opt::WarnDeadSymlinks => self.opts.warn_dead_symlinks = self.eval_bool(at, &s)?,
            Opt::ConfigCheckWarnUnrestrictedRules => {
                // Only affects the warnings of `--config-check`.
                self.eval_bool(at, &s)?;
            }
            Opt::ReportBase16 => self.cur.base16 = self.eval_bool(at, &s)?,
            Opt::ReportDetailedInit => self.cur.detailed_init = self.eval_bool(at, &s)?,
            Opt::ReportGrouped => self.cur.grouped = self.eval_bool(at, &s)?,
            Opt::ReportQuiet => self.cur.quiet = self.eval_bool(at, &s)?,
            Opt::ReportAppend => self.cur.append = self.eval_bool(at, &s)?,
            Opt::ReportSummarizeChanges => self.cur.summarize_changes = self.eval_bool(at, &s)?,
            Opt::ReportIgnoreE2fsattrs => {
                let mut flags = 0u64;
                if s != b"0" {
                    for &c in &s {
                        if let Some((_, f)) = E2FS_FLAGS.iter().find(|(l, _)| *l == c) {
                            flags |= f;
                        }
                        // AIDE ignores unknown letters (with a notice).
                    }
                }
                self.cur.ignore_e2fsattrs = flags;
            }
            Opt::ReportLevel => {
                self.cur.level = match s.as_slice() {
                    b"minimal" => ReportLevel::Minimal,
                    b"summary" => ReportLevel::Summary,
                    b"database_attributes" => ReportLevel::DatabaseAttributes,
                    b"list_entries" => ReportLevel::ListEntries,
                    b"changed_attributes" => ReportLevel::ChangedAttributes,
                    b"added_removed_attributes" => ReportLevel::AddedRemovedAttributes,
                    b"added_removed_entries" => ReportLevel::AddedRemovedEntries,
                    _ => return Err(at.err(format!("invalid report level: '{}'", lossy(&s)))),
                }
            }
            Opt::ReportFormat => {
                self.cur.format = match s.as_slice() {
                    b"plain" => ReportFormat::Plain,
                    b"json" => ReportFormat::Json,
                    _ => return Err(at.err(format!("invalid report format: '{}'", lossy(&s)))),
                }
            }
            Opt::LogLevel => {
                let level = match s.as_slice() {
                    b"error" => LogLevel::Error,
                    b"warning" => LogLevel::Warning,
                    b"notice" => LogLevel::Notice,
                    b"info" => LogLevel::Info,
                    b"rule" => LogLevel::Rule,
                    b"compare" => LogLevel::Compare,
                    b"config" => LogLevel::Config,
                    b"debug" | b"thread" => LogLevel::Debug,
                    b"trace" => LogLevel::Trace,
                    _ => return Err(at.err(format!("invalid log level: '{}'", lossy(&s)))),
                };
                if !self.log_level_set {
                    self.opts.log_level = level;
                    self.log_level_set = true;
                }
            }
            Opt::ConfigVersion => self.cur.config_version = Some(lossy(&s)),
            Opt::NumWorkers => {
                let n = parse_num_workers(&s)
                    .ok_or_else(|| at.err(format!("invalid number of workers: '{}'", lossy(&s))))?;
                if !self.num_workers_set {
                    self.opts.num_workers = Some(n);
                    self.num_workers_set = true;
                }
            }
            Opt::Verbose => {
                let v = std::str::from_utf8(&s)
                    .ok()
                    .and_then(|t| t.parse::<u8>().ok())
                    .ok_or_else(|| {
                        at.err(format!(
                            "invalid value for 'verbose' (expecting a number from 0 to 255): '{}'",
                            lossy(&s)
                        ))
                    })?;
                self.warn(
                    at,
                    "'verbose' is an AIDE 0.16 option (AIDE 0.18 rejects it); mapped onto 'report_level'",
                );
                self.opts.verbose = Some(v);
                self.cur.level = verbose_to_report_level(v);
            }
            Opt::SyslogFormat => {
                self.eval_bool(at, &s)?;
                self.warn(
                    at,
                    "'syslog_format' is an AIDE 0.16 option (AIDE 0.18 rejects it); ignored",
                );
            }
            Opt::DatabaseAttrs
            | Opt::ReportIgnoreAddedAttrs
            | Opt::ReportIgnoreRemovedAttrs
            | Opt::ReportIgnoreChangedAttrs
            | Opt::ReportForceAttrs => {
                return Err(at.err(format!(
                    "'{}' expects an attribute expression",
                    lex::option_name(opt)
                )));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_include(
        &mut self,
        at: At<'_>,
        depth: usize,
        rule_prefix: Option<&[u8]>,
        exec: bool,
        path: &[Frag],
        rx: Option<&Vec<Frag>>,
        new_prefix: Option<&Vec<Frag>>,
    ) -> Result<(), ConfigError> {
        if depth >= 16 {
            return Err(at.err("include files are nested too deeply"));
        }
        let kw = if exec { "@@x_include" } else { "@@include" };
        if exec && !self.host.runs_programs() {
            return Err(at.err(
                "'@@x_include' is refused here: it would run a program of the node with the scanner's privileges (use @@include)",
            ));
        }
        let path = self.eval_string(path);
        if let Some(rx) = rx {
            let rx = self.eval_string(rx);
            let new_prefix = new_prefix.map(|p| {
                let mut p = self.eval_string(p);
                if p.last() == Some(&b'/') {
                    p.pop();
                }
                p
            });
            return self.include_directory(
                at,
                kw,
                &path,
                &rx,
                exec,
                new_prefix,
                depth,
                rule_prefix,
            );
        }
        let p = OsStr::from_bytes(&path);
        let what = format!("'{kw} {}'", lossy(&path));
        let md = self.host.stat(Path::new(p), false).map_err(|e| {
            at.io_err(&e, &what, || {
                format!(
                    "'@@include': lstat for '{}' failed: {}",
                    lossy(&path),
                    os_err(&e)
                )
            })
        })?;
        if !md.is_file {
            return Err(at.err(format!(
                "'@@include': '{}' is not a regular file",
                lossy(&path)
            )));
        }
        let run = exec && md.mode & 0o100 != 0;
        self.include_file(at, Path::new(p), run, depth, rule_prefix)
    }

    fn check_permissions(&self, at: At<'_>, path: &Path, md: &FileStat) -> Result<(), ConfigError> {
        let euid = self.host.euid();
        if (md.uid != euid && md.uid != 0) || md.mode & 0o022 != 0 {
            return Err(at.err(format!(
                "'@@x_include': bad ownership or modes for '{}' (please ensure it is neither group- nor world-writable and owned by the current user or root)",
                path.display()
            )));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn include_directory(
        &mut self,
        at: At<'_>,
        kw: &str,
        dir: &[u8],
        rx: &[u8],
        exec: bool,
        new_prefix: Option<Vec<u8>>,
        depth: usize,
        rule_prefix: Option<&[u8]>,
    ) -> Result<(), ConfigError> {
        let regex = Regex::new(rx).map_err(|e| {
            at.err(format!(
                "'{}': error in regular expression '{}': {}",
                kw,
                lossy(rx),
                e
            ))
        })?;
        let mut cache = regex.create_cache();
        let dir_path = Path::new(OsStr::from_bytes(dir));
        let what = format!("'{kw} {}'", lossy(dir));
        if exec {
            let md = self.host.stat(dir_path, true).map_err(|e| {
                at.io_err(&e, &what, || {
                    format!(
                        "'@@x_include': stat for '{}' failed: {}",
                        lossy(dir),
                        os_err(&e)
                    )
                })
            })?;
            self.check_permissions(at, dir_path, &md)?;
        }
        let mut names = self.host.list(dir_path).map_err(|e| {
            at.io_err(&e, &what, || {
                format!(
                    "'{}': failed to open directory '{}': {}",
                    kw,
                    lossy(dir),
                    os_err(&e)
                )
            })
        })?;
        names.sort();
        if let Some(p) = &new_prefix {
            if p.first() != Some(&b'/') {
                let c = p
                    .first()
                    .map(|&c| (c as char).to_string())
                    .unwrap_or_default();
                return Err(at.err(format!(
                    "'{}': invalid rule prefix '{}': unexpected first character '{}', expected '/'",
                    kw,
                    lossy(p),
                    c
                )));
            }
        }
        let nested: Option<Vec<u8>> = match (rule_prefix, new_prefix) {
            (Some(a), Some(b)) => Some([a, &b[..]].concat()),
            (Some(a), None) => Some(a.to_vec()),
            (None, b) => b,
        };
        for name in names {
            let mut fp = dir.to_vec();
            fp.push(b'/');
            fp.extend_from_slice(&name);
            let fpath = Path::new(OsStr::from_bytes(&fp));
            let md = self.host.stat(fpath, true).map_err(|e| {
                at.io_err(&e, &what, || {
                    format!("'{}': stat for '{}' failed: {}", kw, lossy(&fp), os_err(&e))
                })
            })?;
            if !md.is_file || !regex.is_match_unanchored(&mut cache, &name) {
                continue;
            }
            let run = exec && md.mode & 0o100 != 0;
            if run {
                self.check_permissions(at, fpath, &md)?;
            }
            self.include_file(at, fpath, run, depth, nested.as_deref())?;
        }
        Ok(())
    }

    fn include_file(
        &mut self,
        at: At<'_>,
        path: &Path,
        exec: bool,
        depth: usize,
        prefix: Option<&[u8]>,
    ) -> Result<(), ConfigError> {
        if exec {
            let out = self.execute(at, path)?;
            let name = format!("{} (stdout)", path.display());
            return self.run_source(&out, &name, depth, prefix);
        }
        let text = self.host.read(path).map_err(|source| {
            if is_unavailable(&source) {
                at.needs_host(format!("'@@include {}'", path.display()))
            } else {
                ConfigError::Io {
                    location: at.prefix(),
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let name = path.display().to_string();
        self.run_source(&text, &name, depth, prefix)
    }

    /// Run an `@@x_include` program and return its standard output. Like AIDE, anything on
    /// its standard error or a non-zero exit status is an error, and `@@x_include_setenv`
    /// variables do not override variables already in the environment.
    fn execute(&self, at: At<'_>, path: &Path) -> Result<Vec<u8>, ConfigError> {
        let env: Vec<(OsString, OsString)> = self
            .env
            .iter()
            .map(|(k, v)| (OsStr::from_bytes(k), OsStr::from_bytes(v)))
            .filter(|(k, _)| std::env::var_os(k).is_none())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let out = self.host.run(path, &env).map_err(|e| {
            if is_unavailable(&e) {
                at.needs_host(format!("'@@x_include {}'", path.display()))
            } else {
                at.exec_err(format!(
                    "{}: execution failed: {}",
                    path.display(),
                    os_err(&e)
                ))
            }
        })?;
        if !out.stderr.is_empty() || !out.status.success() {
            let mut msg = String::new();
            for l in String::from_utf8_lossy(&out.stderr).lines() {
                msg.push_str(&format!("{}: stderr> {}\n", path.display(), l));
            }
            let status = out
                .status
                .code()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "killed by signal".into());
            msg.push_str(&format!(
                "{}: execution failed (exit status: {})",
                path.display(),
                status
            ));
            return Err(at.exec_err(msg));
        }
        Ok(out.stdout)
    }

    pub(super) fn finish(mut self, path: &Path) -> Config {
        if self.urls.is_empty() {
            // AIDE's default, added after the whole configuration was read.
            let _ = self.add_report_url(None, UrlKind::Stdout, Vec::new());
        }
        let first = self.urls[0].1.clone();
        let differs = self.urls.iter().skip(1).any(|(_, snap, _)| {
            let mut a = snap.clone();
            // Level and format are kept per URL; database_attrs and config_version are global.
            a.level = first.level;
            a.format = first.format;
            a.database_attrs = first.database_attrs;
            a.config_version.clone_from(&first.config_version);
            a != first
        });
        if differs {
            self.warnings.push(format!(
                "{}: report settings differ between report_url lines (AIDE applies the settings in effect at each report_url line); this scanner uses those of the first report_url for all of them",
                path.display()
            ));
        }
        let mut report = first;
        report.urls = self.urls.into_iter().map(|(u, _, _)| u).collect();
        report.level = self.cur.level;
        report.format = self.cur.format;
        report.database_attrs = self.cur.database_attrs;
        report.config_version = self.cur.config_version.clone();
        self.opts.report = report;
        Config {
            options: self.opts,
            rules: self.rules.build(),
            path: path.to_path_buf(),
            warnings: self.warnings,
            origins: self.origins,
        }
    }
}

impl Origin {
    fn at(at: At<'_>) -> Origin {
        Origin {
            file: at.file.to_string(),
            line: at.line,
        }
    }
}

/// AIDE's `do_num_workers`: `N` or `N%` of the online CPUs.
pub(super) fn parse_num_workers(s: &[u8]) -> Option<usize> {
    let t = std::str::from_utf8(s).ok()?;
    let t = t.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let nd = body.bytes().take_while(u8::is_ascii_digit).count();
    let number: i64 = if nd == 0 { 0 } else { body[..nd].parse().ok()? };
    let number = if neg { -number } else { number };
    let rest = &body[nd..];
    if rest == "%" {
        if !(0..=100).contains(&number) {
            return None;
        }
        // SAFETY: sysconf has no memory-safety preconditions.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as i64;
        return Some(((cpus * number) as f64 / 100.0).ceil() as usize);
    }
    if !rest.is_empty() || number < 0 {
        return None;
    }
    Some(number as usize)
}
