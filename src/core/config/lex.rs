//! The lexer of AIDE 0.18's configuration language (`src/conf_lex.l`), one line at a time.
//!
//! flex semantics are reproduced: the longest match wins, ties go to the rule listed first, and
//! every line starts in the `INITIAL` state (comment and empty lines produce no tokens).

use std::ops::Range;

use super::ConfigError;

/// Configuration options known to the lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opt {
    DatabaseIn,
    DatabaseOut,
    DatabaseNew,
    DatabaseAttrs,
    WarnDeadSymlinks,
    ReportGrouped,
    ReportSummarizeChanges,
    AclNoSymlinkFollow,
    ReportFormat,
    ReportLevel,
    ReportIgnoreAddedAttrs,
    ReportIgnoreRemovedAttrs,
    ReportIgnoreChangedAttrs,
    ReportForceAttrs,
    Verbose,
    LogLevel,
    DatabaseAddMetadata,
    ReportUrl,
    ReportDetailedInit,
    ReportBase16,
    ReportQuiet,
    ReportAppend,
    ReportIgnoreE2fsattrs,
    GzipDbout,
    RootPrefix,
    ConfigVersion,
    ConfigCheckWarnUnrestrictedRules,
    NumWorkers,
    /// AIDE 0.16 only (0.18 rejects it); accepted and ignored.
    SyslogFormat,
}

/// (name, option, value is an attribute expression, deprecated in favour of)
const OPTIONS: &[(&str, Opt, bool, Option<&str>)] = &[
    ("database_in", Opt::DatabaseIn, false, None),
    ("database", Opt::DatabaseIn, false, Some("database_in")),
    ("database_out", Opt::DatabaseOut, false, None),
    ("database_new", Opt::DatabaseNew, false, None),
    ("database_attrs", Opt::DatabaseAttrs, true, None),
    ("warn_dead_symlinks", Opt::WarnDeadSymlinks, false, None),
    ("grouped", Opt::ReportGrouped, false, Some("report_grouped")),
    ("report_grouped", Opt::ReportGrouped, false, None),
    (
        "summarize_changes",
        Opt::ReportSummarizeChanges,
        false,
        Some("report_summarize_changes"),
    ),
    (
        "report_summarize_changes",
        Opt::ReportSummarizeChanges,
        false,
        None,
    ),
    (
        "acl_no_symlink_follow",
        Opt::AclNoSymlinkFollow,
        false,
        None,
    ),
    ("report_format", Opt::ReportFormat, false, None),
    ("report_level", Opt::ReportLevel, false, None),
    (
        "report_ignore_added_attrs",
        Opt::ReportIgnoreAddedAttrs,
        true,
        None,
    ),
    (
        "report_ignore_removed_attrs",
        Opt::ReportIgnoreRemovedAttrs,
        true,
        None,
    ),
    (
        "report_ignore_changed_attrs",
        Opt::ReportIgnoreChangedAttrs,
        true,
        None,
    ),
    ("report_force_attrs", Opt::ReportForceAttrs, true, None),
    ("verbose", Opt::Verbose, false, None),
    ("log_level", Opt::LogLevel, false, None),
    (
        "database_add_metadata",
        Opt::DatabaseAddMetadata,
        false,
        None,
    ),
    ("report_url", Opt::ReportUrl, false, None),
    ("report_detailed_init", Opt::ReportDetailedInit, false, None),
    ("report_base16", Opt::ReportBase16, false, None),
    ("report_quiet", Opt::ReportQuiet, false, None),
    ("report_append", Opt::ReportAppend, false, None),
    (
        "report_ignore_e2fsattrs",
        Opt::ReportIgnoreE2fsattrs,
        false,
        None,
    ),
    ("gzip_dbout", Opt::GzipDbout, false, None),
    ("root_prefix", Opt::RootPrefix, false, None),
    ("config_version", Opt::ConfigVersion, false, None),
    (
        "config_check_warn_unrestricted_rules",
        Opt::ConfigCheckWarnUnrestrictedRules,
        false,
        None,
    ),
    ("num_workers", Opt::NumWorkers, false, None),
    ("syslog_format", Opt::SyslogFormat, false, None),
];

pub(crate) fn option_name(o: Opt) -> &'static str {
    OPTIONS
        .iter()
        .find(|(_, op, _, dep)| *op == o && dep.is_none())
        .map(|t| t.0)
        .unwrap_or("?")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BoolOp {
    Defined,
    Hostname,
    Exists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Define,
    Undef,
    If,
    IfDef,
    IfNDef,
    IfHost,
    IfNHost,
    Else,
    Endif,
    Include,
    XInclude,
    SetEnv,
    Not,
    BoolFunc(BoolOp),
    /// `TGROUP`: a group name at the start of a line.
    Group(Vec<u8>),
    /// `TSTRING`
    Str(Vec<u8>),
    /// `TVARIABLE`: `@@{NAME}` in strings, or the name after `@@define` etc.
    Var(Vec<u8>),
    /// `TEXPR`: a group, attribute or restriction name in an expression.
    Expr(Vec<u8>),
    /// `TSPACE` (only in `@@include` lines)
    Space,
    SelRule,
    EquRule,
    NegRule,
    Opt(Opt),
    Eq,
    Plus,
    Minus,
    Comma,
}

impl Tok {
    /// bison's name of the token, for syntax errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Define => "@@define".into(),
            Tok::Undef => "@@undef".into(),
            Tok::If => "@@if".into(),
            Tok::IfDef => "@@ifdef".into(),
            Tok::IfNDef => "@@ifndef".into(),
            Tok::IfHost => "@@ifhost".into(),
            Tok::IfNHost => "@@ifnhost".into(),
            Tok::Else => "@@else".into(),
            Tok::Endif => "@@endif".into(),
            Tok::Include => "@@include".into(),
            Tok::XInclude => "@@x_include".into(),
            Tok::SetEnv => "@@x_include_setenv".into(),
            Tok::Not => "not".into(),
            Tok::BoolFunc(_) => "boolean operator or function".into(),
            Tok::Group(_) => "group name".into(),
            Tok::Str(_) => "string".into(),
            Tok::Var(_) => "variable name".into(),
            Tok::Expr(_) => "group".into(),
            Tok::Space => "whitespace".into(),
            Tok::SelRule => "regular rule".into(),
            Tok::EquRule => "equals rule".into(),
            Tok::NegRule => "negative rule".into(),
            Tok::Opt(_) => "configuration option".into(),
            Tok::Eq => "'='".into(),
            Tok::Plus => "'+'".into(),
            Tok::Minus => "'-'".into(),
            Tok::Comma => "','".into(),
        }
    }
}

/// One lexed line.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub no: usize,
    /// The line as written (without the line end), for messages.
    pub text: String,
    pub toks: Vec<Tok>,
    /// False for a last line without a final newline.
    pub has_newline: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Config,
    DefStmt,
    EnvVar,
    Expr,
    ExprEqHunt,
    Path,
    String,
    Strings,
    StringEqHunt,
    StringHunt,
    Condition,
}

/// `L`: letters (ASCII and the Latin-1 letters AIDE lists), digits, `_`, `%`.
fn is_l(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'_' | b'%' | 0xf6 | 0xe4 | 0xfc | 0xdf | 0xe5 | 0xd6 | 0xc4 | 0xdc | 0xc5
        )
}
/// `G`: `[a-zA-Z0-9]`
fn is_g(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}
/// `O`: `[a-z_]`
fn is_o(c: u8) -> bool {
    c.is_ascii_lowercase() || c == b'_'
}

fn run(s: &[u8], f: impl Fn(u8) -> bool) -> usize {
    s.iter().take_while(|&&c| f(c)).count()
}

const KEYWORDS: &[(&str, Tok)] = &[
    ("@@define", Tok::Define),
    ("@@undef", Tok::Undef),
    ("@@if", Tok::If),
    ("@@ifdef", Tok::IfDef),
    ("@@ifndef", Tok::IfNDef),
    ("@@else", Tok::Else),
    ("@@endif", Tok::Endif),
    ("@@ifhost", Tok::IfHost),
    ("@@ifnhost", Tok::IfNHost),
    ("@@include", Tok::Include),
    ("@@x_include", Tok::XInclude),
    ("@@x_include_setenv", Tok::SetEnv),
];

/// Lexer over one configuration source.
pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line_no: usize,
    file: &'a str,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a [u8], file: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            line_no: 0,
            file,
        }
    }

    /// The number of the last line returned (for errors at the end of the input).
    pub(crate) fn line_no(&self) -> usize {
        self.line_no
    }

    /// The next line that produces tokens, or `None` at the end of the input.
    pub(crate) fn next_line(
        &mut self,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Line>, ConfigError> {
        loop {
            if self.pos >= self.src.len() {
                return Ok(None);
            }
            let rest = &self.src[self.pos..];
            let (raw, has_newline) = match rest.iter().position(|&c| c == b'\n') {
                Some(k) => (&rest[..k], true),
                None => (rest, false),
            };
            self.pos += raw.len() + usize::from(has_newline);
            self.line_no += 1;
            // `\r\n` ends a line like `\n`; any other `\r` is an unexpected character.
            let body = if has_newline && raw.last() == Some(&b'\r') {
                &raw[..raw.len() - 1]
            } else {
                raw
            };
            let line = Line {
                no: self.line_no,
                text: String::from_utf8_lossy(body).into_owned(),
                toks: Vec::new(),
                has_newline,
            };
            let lead = run(body, |c| c == b' ' || c == b'\t');
            let after = &body[lead..];
            if after.is_empty() || after[0] == b'#' && has_newline && !after.contains(&b'\r') {
                continue; // empty or comment line
            }
            let toks = self.lex_line(body, warnings)?;
            if toks.is_empty() {
                continue;
            }
            return Ok(Some(Line { toks, ..line }));
        }
    }

    fn err(&self, msg: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            line: self.line_no,
            msg,
        }
    }

    fn unexpected(&self, c: u8) -> ConfigError {
        // As AIDE prints it (control characters as octal escapes since CVE-2025-54389).
        let shown = match c {
            b'\r' => "\\r".to_string(),
            c if c.is_ascii_control() => format!("\\{:03o}", c),
            c if c.is_ascii() => (c as char).to_string(),
            c => format!("\\x{:02x}", c),
        };
        self.err(format!("unexpected character: '{}'", shown))
    }

    fn lex_line(&self, s: &[u8], warnings: &mut Vec<String>) -> Result<Vec<Tok>, ConfigError> {
        Ok(self
            .lex_spans(s, warnings)?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    /// The tokens of one line, each with the bytes of the line it came from (an empty range
    /// for the selection rule's marker, which is the path's `/`). One token at most per step.
    pub(crate) fn lex_spans(
        &self,
        s: &[u8],
        warnings: &mut Vec<String>,
    ) -> Result<Vec<(Tok, Range<usize>)>, ConfigError> {
        let mut toks = Vec::new();
        let mut spans = Vec::new();
        let mut st = State::Config;
        let mut i = 0;
        'line: while i < s.len() {
            let (start, count) = (i, toks.len());
            'step: {
                let r = &s[i..];
                let c = r[0];
                let ws = run(r, |c| c == b' ' || c == b'\t');
                match st {
                    State::Config => {
                        if ws > 0 {
                            i += ws;
                            break 'step;
                        }
                        if c == b'#' {
                            // Inline comment up to the end of the line (a lone `\r` ends it and
                            // is then an unexpected character).
                            match r.iter().position(|&c| c == b'\r') {
                                Some(k) => return Err(self.unexpected(r[k])),
                                None => break 'line,
                            }
                        }
                        if r.starts_with(b"=/") {
                            toks.push(Tok::EquRule);
                            i += 1;
                            st = State::Path;
                            break 'step;
                        }
                        if r.starts_with(b"!/") {
                            toks.push(Tok::NegRule);
                            i += 1;
                            st = State::Path;
                            break 'step;
                        }
                        if c == b'/' {
                            toks.push(Tok::SelRule);
                            st = State::Path;
                            break 'step;
                        }
                        if c == b'@' {
                            let best = KEYWORDS
                                .iter()
                                .filter(|(k, _)| r.starts_with(k.as_bytes()))
                                .max_by_key(|(k, _)| k.len());
                            let Some((k, t)) = best else {
                                return Err(self.unexpected(c));
                            };
                            let t = t.clone();
                            i += k.len();
                            st = match t {
                                Tok::Define | Tok::Undef => State::DefStmt,
                                Tok::If => State::Condition,
                                Tok::IfDef | Tok::IfNDef | Tok::IfHost | Tok::IfNHost => {
                                    State::StringHunt
                                }
                                Tok::Include | Tok::XInclude => State::Strings,
                                Tok::SetEnv => State::EnvVar,
                                _ => State::Config,
                            };
                            toks.push(t);
                            break 'step;
                        }
                        // Options, unknown options and group names: longest match, first rule wins.
                        let o = run(r, is_o);
                        let g = run(r, is_g);
                        let l = run(r, is_l);
                        let opt = OPTIONS
                            .iter()
                            .filter(|(n, ..)| r.starts_with(n.as_bytes()))
                            .max_by_key(|(n, ..)| n.len());
                        let opt_len = opt.map(|(n, ..)| n.len()).unwrap_or(0);
                        let best = opt_len.max(o).max(g).max(l);
                        if best == 0 {
                            return Err(self.unexpected(c));
                        }
                        let word = &r[..best];
                        if opt_len == best {
                            let (name, op, is_expr, dep) =
                                opt.copied().unwrap_or(("", Opt::Verbose, false, None));
                            if let Some(new) = dep {
                                warnings.push(format!(
                                "{}:{}: Using '{}' is DEPRECATED and will be removed in the next release. Update your config and use '{}' instead",
                                self.file, self.line_no, name, new
                            ));
                            }
                            toks.push(Tok::Opt(op));
                            st = if is_expr {
                                State::ExprEqHunt
                            } else {
                                State::StringEqHunt
                            };
                        } else if o == best {
                            return Err(self.err(format!(
                                "unknown config option: '{}'",
                                String::from_utf8_lossy(word)
                            )));
                        } else {
                            if g != best {
                                warnings.push(format!(
                                "{}:{}: special characters in group names are DEPRECATED. Update your config and only use alphanumeric characters (A-Za-z0-9)",
                                self.file, self.line_no
                            ));
                            }
                            toks.push(Tok::Group(word.to_vec()));
                            st = State::ExprEqHunt;
                        }
                        i += best;
                    }
                    State::ExprEqHunt | State::StringEqHunt => {
                        // `{E}` = ` *= *` (spaces only)
                        let sp = run(r, |c| c == b' ');
                        if r.get(sp) == Some(&b'=') {
                            let sp2 = run(&r[sp + 1..], |c| c == b' ');
                            i += sp + 1 + sp2;
                            toks.push(Tok::Eq);
                            st = if st == State::ExprEqHunt {
                                State::Expr
                            } else {
                                State::String
                            };
                        } else {
                            return Err(self.unexpected(c));
                        }
                    }
                    State::Expr => {
                        if ws > 0 {
                            i += ws;
                            break 'step;
                        }
                        match c {
                            b'+' => toks.push(Tok::Plus),
                            b'-' => toks.push(Tok::Minus),
                            b',' => toks.push(Tok::Comma),
                            _ => {
                                let n = run(r, |c| is_l(c) || c == b'>');
                                if n == 0 {
                                    return Err(self.unexpected(c));
                                }
                                toks.push(Tok::Expr(r[..n].to_vec()));
                                i += n;
                                break 'step;
                            }
                        }
                        i += 1;
                    }
                    State::DefStmt | State::EnvVar => {
                        if ws > 0 {
                            i += ws;
                            break 'step;
                        }
                        let n = if st == State::DefStmt {
                            run(r, is_l)
                        } else if c.is_ascii_alphabetic() || c == b'_' {
                            run(r, |c| c.is_ascii_alphanumeric() || c == b'_')
                        } else {
                            0
                        };
                        if n == 0 {
                            return Err(self.unexpected(c));
                        }
                        toks.push(Tok::Var(r[..n].to_vec()));
                        i += n;
                        st = State::StringHunt;
                    }
                    State::StringHunt => {
                        if ws > 0 {
                            i += ws;
                        }
                        st = State::String;
                    }
                    State::Condition => {
                        if ws > 0 {
                            i += ws;
                            break 'step;
                        }
                        if r.starts_with(b"not") {
                            toks.push(Tok::Not);
                            i += 3;
                            break 'step;
                        }
                        let f = [
                            ("defined", BoolOp::Defined),
                            ("hostname", BoolOp::Hostname),
                            ("exists", BoolOp::Exists),
                        ]
                        .into_iter()
                        .find(|(n, _)| r.starts_with(n.as_bytes()));
                        match f {
                            Some((n, op)) => {
                                toks.push(Tok::BoolFunc(op));
                                i += n.len();
                                st = State::StringHunt;
                            }
                            None => return Err(self.unexpected(c)),
                        }
                    }
                    State::String | State::Strings | State::Path => {
                        if ws > 0 {
                            i += ws;
                            match st {
                                State::Strings => toks.push(Tok::Space),
                                State::String => st = State::Config,
                                _ => st = State::Expr,
                            }
                            break 'step;
                        }
                        if r.starts_with(b"@@{") {
                            let n = run(&r[3..], is_l);
                            if n > 0 && r.get(3 + n) == Some(&b'}') {
                                toks.push(Tok::Var(r[3..3 + n].to_vec()));
                                i += 4 + n;
                                break 'step;
                            }
                        }
                        match c {
                            b'\\' if matches!(r.get(1), Some(b'\\') | Some(b'@') | Some(b' ')) => {
                                toks.push(Tok::Str(vec![r[1]]));
                                i += 2;
                            }
                            b'\\' | b'@' => {
                                toks.push(Tok::Str(vec![c]));
                                i += 1;
                            }
                            b'\r' | 0 => return Err(self.unexpected(c)),
                            _ => {
                                let n = run(r, |c| {
                                    !matches!(c, b'@' | b'\\' | b' ' | b'\t' | b'\r' | b'\n' | 0)
                                });
                                toks.push(Tok::Str(r[..n].to_vec()));
                                i += n;
                            }
                        }
                    }
                }
            }
            if toks.len() > count {
                spans.push(start..i);
            }
        }
        Ok(toks.into_iter().zip(spans).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(s: &str) -> Result<Vec<Vec<Tok>>, ConfigError> {
        let mut l = Lexer::new(s.as_bytes(), "t");
        let mut w = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = l.next_line(&mut w)? {
            out.push(line.toks);
        }
        Ok(out)
    }

    #[test]
    fn tokens() {
        let t = lex("database_out=file:/x # c\n").unwrap();
        assert_eq!(
            t[0],
            vec![
                Tok::Opt(Opt::DatabaseOut),
                Tok::Eq,
                Tok::Str(b"file:/x".to_vec())
            ]
        );
        let t = lex("  /a\\ b@@{X}c f,d R+p-i\r\n").unwrap();
        assert_eq!(
            t[0],
            vec![
                Tok::SelRule,
                Tok::Str(b"/a".to_vec()),
                Tok::Str(b" ".to_vec()),
                Tok::Str(b"b".to_vec()),
                Tok::Var(b"X".to_vec()),
                Tok::Str(b"c".to_vec()),
                Tok::Expr(b"f".to_vec()),
                Tok::Comma,
                Tok::Expr(b"d".to_vec()),
                Tok::Expr(b"R".to_vec()),
                Tok::Plus,
                Tok::Expr(b"p".to_vec()),
                Tok::Minus,
                Tok::Expr(b"i".to_vec()),
            ]
        );
        assert!(lex("foo = p\n").is_err());
        assert_eq!(
            lex("foo1 = p\n").unwrap()[0][0],
            Tok::Group(b"foo1".to_vec())
        );
        assert_eq!(
            lex("sha256 = p\n").unwrap()[0][0],
            Tok::Group(b"sha256".to_vec())
        );
        assert!(lex("/tmp R # c\n").is_err());
        assert!(lex("/tmp R\r").is_err());
        assert_eq!(lex("# only\n\n   \n\t# x\n").unwrap().len(), 0);
        assert_eq!(
            lex("@@include /a ").unwrap()[0],
            vec![
                Tok::Include,
                Tok::Space,
                Tok::Str(b"/a".to_vec()),
                Tok::Space
            ]
        );
        assert_eq!(
            lex("@@if not defined X\n").unwrap()[0],
            vec![
                Tok::If,
                Tok::Not,
                Tok::BoolFunc(BoolOp::Defined),
                Tok::Str(b"X".to_vec())
            ]
        );
    }
}
