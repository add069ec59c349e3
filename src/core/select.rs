//! Which paths are recorded, and with which attributes: AIDE 0.18's rule tree ("seltree").
//!
//! The semantics are those of the `aide` 0.18.3 that Debian 12 ships (checked against it with
//! `aide --dry-init`/`--init`, see the tests), i.e. upstream `src/seltree.c` and
//! `src/db_disk.c` of 0.18.3 plus the fixes Debian carries:
//!
//! * Every rule is attached to a tree node: the literal directory prefix of its regex (the text up
//!   to the last `/` before the first of `( ^ $ ? * [`, with one level of `\` removed). The nodes
//!   are built exactly as AIDE builds them, including its quirks (a node whose prefix contains
//!   other regex characters such as `.` or `+` only applies to paths under that literal directory).
//! * A path is checked from the deepest node that is (an ancestor of) its parent directory up to
//!   the root: the equals list of that node only if the node is exactly the parent directory,
//!   the selective lists deepest first (first match wins), then the negative lists on the way
//!   back down (these also apply to every parent directory between the node and the path, with
//!   unrestricted negative rules only). A restricted negative rule matching a path of its type
//!   makes it "descend, do not add".
//! * Regexes are matched like PCRE2 with `PCRE2_ANCHORED | PCRE2_PARTIAL_SOFT` on the raw path
//!   bytes. Debian's binary matches in byte mode (no UTF): `.` matches one byte, `é` in a rule is
//!   two literal bytes, a path with invalid UTF-8 is matched like any other, `$` also matches
//!   before a final newline. A partial match (the end of the path reached while the regex could
//!   still match) of a directory means "descend, do not add".
//! * Directories matched by a selective *or equals* rule are recorded and walked into (upstream
//!   0.18.5 "Fix child directory processing on equal match", included in Debian's 0.18.3).
//!
//! The tree is fixed after the configuration is read. AIDE also adds nodes for every matched
//! file while scanning, but those nodes carry no rules and, for a top-down walk, never change
//! a result (see the notes in [`RuleSet::select`]).

use crate::attr::AttrSet;
use crate::entry::FileType;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// What to do with one path found while walking the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Neither record it nor (for a directory) walk into it.
    Skip,
    /// Directory: walk into it, do not record it.
    Descend,
    /// Record it with the rule's attributes; for a directory, `recurse` says whether to walk
    /// into it. AIDE 0.18.5+ (and Debian's patched 0.18.3) walks into every recorded
    /// directory, equals matches included, so `recurse` is currently always true; the
    /// children of an equals-matched directory are then only recorded if some other rule
    /// selects them.
    Record { attrs: AttrSet, recurse: bool },
}

/// The three kinds of AIDE rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `/regex [restriction] attributes`
    Selective,
    /// `=/regex [restriction] attributes`
    Equals,
    /// `!/regex [restriction]`
    Negative,
}

impl RuleKind {
    /// The character that introduces the rule in a config line (`""`, `"="`, `"!"`).
    pub fn prefix(self) -> &'static str {
        match self {
            RuleKind::Selective => "",
            RuleKind::Equals => "=",
            RuleKind::Negative => "!",
        }
    }
}

/// File-type restriction of a rule, AIDE's `RESTRICTION_TYPE` bits. Empty = unrestricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Restriction(pub u16);

impl Restriction {
    pub const NONE: Restriction = Restriction(0);

    /// The bit AIDE uses for a file type (`FT_REG`, `FT_DIR`, ...); 0 for an unknown type.
    pub fn bit(ft: FileType) -> u16 {
        match ft {
            FileType::Regular => 1 << 0,
            FileType::Directory => 1 << 1,
            FileType::Fifo => 1 << 2,
            FileType::Symlink => 1 << 3,
            FileType::BlockDevice => 1 << 4,
            FileType::CharDevice => 1 << 5,
            FileType::Socket => 1 << 6,
            FileType::Door => 1 << 7,
            FileType::Port => 1 << 8,
            FileType::Unknown => 0,
        }
    }

    /// A restriction letter as AIDE 0.18 on Linux accepts it (`f d p l b c s`; `D` and `P`
    /// only exist where the system has doors and event ports, so Linux AIDE rejects them).
    pub fn from_letter(c: u8) -> Option<Restriction> {
        let ft = match c {
            b'f' => FileType::Regular,
            b'd' => FileType::Directory,
            b'p' => FileType::Fifo,
            b'l' => FileType::Symlink,
            b'b' => FileType::BlockDevice,
            b'c' => FileType::CharDevice,
            b's' => FileType::Socket,
            _ => return None,
        };
        Some(Restriction(Restriction::bit(ft)))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, o: Restriction) -> Restriction {
        Restriction(self.0 | o.0)
    }

    /// True if a rule with this restriction applies to a file of type `ft`.
    pub fn allows(self, ft: FileType) -> bool {
        self.0 == 0 || self.0 & Restriction::bit(ft) != 0
    }

    /// AIDE's text form: `f,d` or `(none)`.
    pub fn to_aide_string(self) -> String {
        if self.0 == 0 {
            return "(none)".to_string();
        }
        // AIDE's table order.
        const ORDER: [(u8, FileType); 7] = [
            (b'f', FileType::Regular),
            (b'd', FileType::Directory),
            (b'p', FileType::Fifo),
            (b'l', FileType::Symlink),
            (b'b', FileType::BlockDevice),
            (b'c', FileType::CharDevice),
            (b's', FileType::Socket),
        ];
        let mut v = Vec::new();
        for (c, ft) in ORDER {
            if self.0 & Restriction::bit(ft) != 0 {
                v.push((c as char).to_string());
            }
        }
        v.join(",")
    }
}

/// One rule as read from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kind: RuleKind,
    /// The regex as AIDE compiles it (variables expanded, include prefix prepended).
    pub regex: Vec<u8>,
    pub restriction: Restriction,
    /// Attributes as written (empty for negative rules).
    pub attrs: AttrSet,
    /// Path of the tree node the rule is attached to.
    pub node: Vec<u8>,
    /// Where the rule was defined.
    pub file: String,
    pub line: usize,
    pub line_text: String,
}

// ---------------------------------------------------------------------------------------------
// PCRE2 (byte mode) -> regex-syntax translation

/// Translation of PCRE2 patterns (as AIDE compiles them, without `PCRE2_UTF`) into the syntax of
/// `regex-syntax` with Unicode disabled, so that both match the same bytes.
pub(crate) mod pcre {
    /// Translate a PCRE2 pattern. Constructs that have no equivalent in a finite automaton
    /// (back references, look-around, atomic groups, possessive quantifiers, ...) are rejected.
    pub fn translate(pat: &[u8]) -> Result<String, String> {
        let mut t = Translator {
            p: pat,
            i: 0,
            out: String::with_capacity(pat.len() * 2),
            groups: 0,
        };
        t.run()?;
        Ok(t.out)
    }

    struct Translator<'a> {
        p: &'a [u8],
        i: usize,
        out: String,
        /// Capture groups opened so far (decides between back reference and octal escape).
        groups: usize,
    }

    /// One element of a character class.
    enum ClassItem {
        Byte(u8),
        /// Already translated text of a class escape (`\d`, `[:alpha:]`, ...).
        Set(String),
    }

    fn lit(out: &mut String, b: u8) {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{:02X}", b));
        }
    }

    const HSPACE: &str = "\\x09\\x20\\xA0";
    const VSPACE: &str = "\\x0A-\\x0D\\x85";

    impl Translator<'_> {
        fn peek(&self, k: usize) -> Option<u8> {
            self.p.get(self.i + k).copied()
        }

        fn run(&mut self) -> Result<(), String> {
            while let Some(c) = self.peek(0) {
                self.i += 1;
                match c {
                    b'\\' => self.escape()?,
                    b'[' => self.class()?,
                    b'(' => self.group()?,
                    b')' => self.out.push(')'),
                    b'|' => self.out.push('|'),
                    b'.' => self.out.push('.'),
                    b'^' => self.out.push('^'),
                    // PCRE2's `$` (no multiline): end of subject or before a final newline.
                    b'$' => self.out.push_str("(?:\\x0A?\\z)"),
                    b'*' | b'+' | b'?' => {
                        self.out.push(c as char);
                        self.quant_suffix()?;
                    }
                    b'{' => {
                        if let Some(q) = self.counted_quantifier() {
                            self.out.push_str(&q);
                            self.quant_suffix()?;
                        } else {
                            lit(&mut self.out, b'{');
                        }
                    }
                    _ => lit(&mut self.out, c),
                }
            }
            Ok(())
        }

        /// After a quantifier: `?` (lazy) is fine, `+` (possessive) is not supported.
        fn quant_suffix(&mut self) -> Result<(), String> {
            match self.peek(0) {
                Some(b'?') => {
                    self.i += 1;
                    self.out.push('?');
                    Ok(())
                }
                Some(b'+') => Err("possessive quantifiers are not supported".into()),
                _ => Ok(()),
            }
        }

        /// `{n}`, `{n,}`, `{n,m}` at the current position (just after `{`), as PCRE2 10.42
        /// recognises them; anything else makes `{` a literal.
        fn counted_quantifier(&mut self) -> Option<String> {
            let rest = &self.p[self.i..];
            let end = rest.iter().position(|&b| b == b'}')?;
            let body = &rest[..end];
            let (a, b) = match body.iter().position(|&b| b == b',') {
                Some(k) => (&body[..k], Some(&body[k + 1..])),
                None => (body, None),
            };
            let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
            if !digits(a) {
                return None;
            }
            if let Some(b) = b {
                if !b.is_empty() && !digits(b) {
                    return None;
                }
            }
            self.i += end + 1;
            Some(format!("{{{}}}", String::from_utf8_lossy(body)))
        }

        fn group(&mut self) -> Result<(), String> {
            match self.peek(0) {
                Some(b'*') => Err("backtracking control verbs are not supported".into()),
                Some(b'?') => {
                    self.i += 1;
                    match self.peek(0) {
                        Some(b':') => {
                            self.i += 1;
                            self.out.push_str("(?:");
                            Ok(())
                        }
                        Some(b'#') => {
                            // Comment up to the next ')'.
                            let rest = &self.p[self.i..];
                            match rest.iter().position(|&b| b == b')') {
                                Some(k) => {
                                    self.i += k + 1;
                                    Ok(())
                                }
                                None => Err("missing ) after (?# comment".into()),
                            }
                        }
                        Some(b'<') if matches!(self.peek(1), Some(b'=') | Some(b'!')) => {
                            Err("lookbehind assertions are not supported".into())
                        }
                        Some(b'=') | Some(b'!') => {
                            Err("lookahead assertions are not supported".into())
                        }
                        Some(b'<') | Some(b'\'') => {
                            let close = if self.peek(0) == Some(b'<') {
                                b'>'
                            } else {
                                b'\''
                            };
                            self.named_group(1, close)
                        }
                        Some(b'P') if self.peek(1) == Some(b'<') => self.named_group(2, b'>'),
                        Some(b'i') | Some(b's') | Some(b'-') | Some(b'm') | Some(b'x')
                        | Some(b'n') | Some(b'U') | Some(b'J') | Some(b'^') | Some(b')') => {
                            self.flags()
                        }
                        _ => Err(
                            "unsupported group construct (atomic groups, recursion, conditionals, \
                             callouts are not supported)"
                                .into(),
                        ),
                    }
                }
                _ => {
                    self.groups += 1;
                    self.out.push('(');
                    Ok(())
                }
            }
        }

        fn named_group(&mut self, skip: usize, close: u8) -> Result<(), String> {
            self.i += skip;
            let rest = &self.p[self.i..];
            match rest.iter().position(|&b| b == close) {
                Some(k)
                    if k > 0
                        && rest[..k]
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'_') =>
                {
                    self.i += k + 1;
                    self.out.push_str("(?:");
                    Ok(())
                }
                _ => Err("invalid group name".into()),
            }
        }

        fn flags(&mut self) -> Result<(), String> {
            let start = self.i;
            while let Some(c) = self.peek(0) {
                match c {
                    b'i' | b's' | b'-' => self.i += 1,
                    b':' | b')' => {
                        let flags = String::from_utf8_lossy(&self.p[start..self.i]).into_owned();
                        self.i += 1;
                        if flags.is_empty() || flags.ends_with('-') && flags.len() == 1 {
                            if c == b':' {
                                self.out.push_str("(?:");
                            }
                            return Ok(());
                        }
                        self.out.push_str("(?");
                        self.out.push_str(&flags);
                        self.out.push(c as char);
                        return Ok(());
                    }
                    _ => {
                        return Err(format!(
                            "unsupported inline option '{}' (only 'i' and 's' are supported)",
                            c as char
                        ))
                    }
                }
            }
            Err("missing ) after (? options".into())
        }

        fn hex_escape(&mut self) -> Result<u8, String> {
            if self.peek(0) == Some(b'{') {
                let rest = &self.p[self.i + 1..];
                let k = rest
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or("missing } in \\x{}")?;
                let digits = &rest[..k];
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
                    return Err("invalid \\x{} escape".into());
                }
                let v = u32::from_str_radix(std::str::from_utf8(digits).unwrap_or("x"), 16)
                    .map_err(|_| {
                        "character code point value in \\x{} or \\o{} is too large".to_string()
                    })?;
                if v > 0xff {
                    return Err("character code point value in \\x{} or \\o{} is too large".into());
                }
                self.i += k + 2;
                Ok(v as u8)
            } else {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match self.peek(0) {
                        Some(c) if c.is_ascii_hexdigit() => {
                            v = v * 16 + (c as char).to_digit(16).unwrap_or(0);
                            self.i += 1;
                            n += 1;
                        }
                        _ => break,
                    }
                }
                Ok(v as u8)
            }
        }

        fn octal_escape(&mut self, max_more: usize, first: u32) -> u8 {
            let mut v = first;
            let mut n = 0;
            while n < max_more {
                match self.peek(0) {
                    Some(c @ b'0'..=b'7') => {
                        v = v * 8 + (c - b'0') as u32;
                        self.i += 1;
                        n += 1;
                    }
                    _ => break,
                }
            }
            (v & 0xff) as u8
        }

        fn braced_octal(&mut self) -> Result<u8, String> {
            if self.peek(0) != Some(b'{') {
                return Err("missing opening brace after \\o".into());
            }
            let rest = &self.p[self.i + 1..];
            let k = rest
                .iter()
                .position(|&b| b == b'}')
                .ok_or("missing } in \\o{}")?;
            let digits = &rest[..k];
            if digits.is_empty() || !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                return Err("invalid \\o{} escape".into());
            }
            let v = u32::from_str_radix(std::str::from_utf8(digits).unwrap_or("x"), 8)
                .unwrap_or(u32::MAX);
            if v > 0xff {
                return Err("character code point value in \\x{} or \\o{} is too large".into());
            }
            self.i += k + 2;
            Ok(v as u8)
        }

        /// Escapes that stand for one byte, in and outside classes. `None` = not such an escape.
        fn byte_escape(&mut self, e: u8) -> Result<Option<u8>, String> {
            Ok(Some(match e {
                b'n' => b'\n',
                b't' => b'\t',
                b'r' => b'\r',
                b'f' => 0x0c,
                b'a' => 0x07,
                b'e' => 0x1b,
                b'x' => self.hex_escape()?,
                b'o' => self.braced_octal()?,
                b'0' => self.octal_escape(2, 0),
                b'c' => {
                    let x = self.peek(0).ok_or("\\c at end of pattern")?;
                    if !(0x20..0x7f).contains(&x) {
                        return Err("\\c must be followed by a printable ASCII character".into());
                    }
                    self.i += 1;
                    x.to_ascii_uppercase() ^ 0x40
                }
                _ if !e.is_ascii_alphanumeric() => e,
                _ => return Ok(None),
            }))
        }

        /// `\Q...\E`: the literal bytes up to `\E` (or the end).
        fn quoted(&mut self) -> Vec<u8> {
            let rest = &self.p[self.i..];
            let end = rest.windows(2).position(|w| w == b"\\E");
            let (lit, adv) = match end {
                Some(k) => (&rest[..k], k + 2),
                None => (rest, rest.len()),
            };
            self.i += adv;
            lit.to_vec()
        }

        fn escape(&mut self) -> Result<(), String> {
            let e = self.peek(0).ok_or("\\ at end of pattern")?;
            self.i += 1;
            let s: &str = match e {
                b'd' => "\\d",
                b'D' => "\\D",
                b'w' => "\\w",
                b'W' => "\\W",
                b's' => "\\s",
                b'S' => "\\S",
                b'b' => "\\b",
                b'B' => "\\B",
                b'A' | b'G' => "\\A",
                b'z' => "\\z",
                b'Z' => "(?:\\x0A?\\z)",
                b'h' => "[\\x09\\x20\\xA0]",
                b'H' => "[^\\x09\\x20\\xA0]",
                b'v' => "[\\x0A-\\x0D\\x85]",
                b'V' => "[^\\x0A-\\x0D\\x85]",
                b'R' => "(?:\\x0D\\x0A|[\\x0A-\\x0D\\x85])",
                b'N' if self.peek(0) != Some(b'{') => "[^\\x0A]",
                b'Q' => {
                    for b in self.quoted() {
                        lit(&mut self.out, b);
                    }
                    return Ok(());
                }
                b'E' => return Ok(()),
                b'1'..=b'9' => {
                    // PCRE2: a back reference if < 10, starting with 8 or 9, or not more than
                    // the groups so far; otherwise up to three octal digits.
                    let start = self.i - 1;
                    let digits = self.p[start..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    let n: usize = std::str::from_utf8(&self.p[start..start + digits])
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(usize::MAX);
                    if n < 10 || e >= b'8' || n <= self.groups {
                        return Err("back references are not supported".into());
                    }
                    self.i = start;
                    let b = self.octal_escape(3, 0);
                    lit(&mut self.out, b);
                    return Ok(());
                }
                b'g' | b'k' => return Err("back references are not supported".into()),
                b'K' => return Err("\\K is not supported".into()),
                b'p' | b'P' | b'X' => {
                    return Err("Unicode properties are not supported (AIDE matches bytes)".into())
                }
                b'C' => "[\\x00-\\xFF]",
                _ => match self.byte_escape(e)? {
                    Some(b) => {
                        lit(&mut self.out, b);
                        return Ok(());
                    }
                    None => {
                        return Err(format!(
                            "unrecognized character follows \\: '{}'",
                            e as char
                        ))
                    }
                },
            };
            self.out.push_str(s);
            Ok(())
        }

        /// One element inside `[...]`.
        fn class_item(&mut self) -> Result<ClassItem, String> {
            let c = self
                .peek(0)
                .ok_or("missing terminating ] for character class")?;
            self.i += 1;
            match c {
                b'[' if self.peek(0) == Some(b':') => {
                    let rest = &self.p[self.i + 1..];
                    if let Some(k) = rest.windows(2).position(|w| w == b":]") {
                        let name = &rest[..k];
                        let (neg, bare) = match name.first() {
                            Some(b'^') => (true, &name[1..]),
                            _ => (false, name),
                        };
                        const NAMES: [&[u8]; 14] = [
                            b"alpha", b"digit", b"alnum", b"upper", b"lower", b"space", b"punct",
                            b"print", b"graph", b"cntrl", b"xdigit", b"blank", b"word", b"ascii",
                        ];
                        if !NAMES.contains(&bare) {
                            return Err(format!(
                                "unknown POSIX class name '{}'",
                                String::from_utf8_lossy(bare)
                            ));
                        }
                        self.i += k + 3;
                        let bare = String::from_utf8_lossy(bare);
                        return Ok(ClassItem::Set(format!(
                            "[:{}{}:]",
                            if neg { "^" } else { "" },
                            bare
                        )));
                    }
                    Ok(ClassItem::Byte(b'['))
                }
                b'[' if matches!(self.peek(0), Some(b'.') | Some(b'=')) => {
                    let rest = &self.p[self.i + 1..];
                    let term = [self.p[self.i], b']'];
                    if rest.windows(2).any(|w| w == term) {
                        return Err("POSIX collating elements are not supported".into());
                    }
                    Ok(ClassItem::Byte(b'['))
                }
                b'\\' => {
                    let e = self.peek(0).ok_or("\\ at end of pattern")?;
                    self.i += 1;
                    let s = match e {
                        b'd' => "\\d",
                        b'D' => "\\D",
                        b'w' => "\\w",
                        b'W' => "\\W",
                        b's' => "\\s",
                        b'S' => "\\S",
                        b'h' => return Ok(ClassItem::Set(HSPACE.to_string())),
                        b'H' => return Ok(ClassItem::Set(format!("[^{}]", HSPACE))),
                        b'v' => return Ok(ClassItem::Set(VSPACE.to_string())),
                        b'V' => return Ok(ClassItem::Set(format!("[^{}]", VSPACE))),
                        b'b' => return Ok(ClassItem::Byte(0x08)),
                        b'1'..=b'7' => {
                            return Ok(ClassItem::Byte(self.octal_escape(2, (e - b'0') as u32)))
                        }
                        b'Q' => {
                            // Only the simple form: the quoted bytes become class members.
                            let q = self.quoted();
                            let mut s = String::new();
                            for b in q {
                                lit(&mut s, b);
                            }
                            return Ok(ClassItem::Set(s));
                        }
                        b'E' => return Ok(ClassItem::Set(String::new())),
                        _ => match self.byte_escape(e)? {
                            Some(b) => return Ok(ClassItem::Byte(b)),
                            None => {
                                return Err(format!(
                                    "unrecognized or unsupported escape in character class: '\\{}'",
                                    e as char
                                ))
                            }
                        },
                    };
                    Ok(ClassItem::Set(s.to_string()))
                }
                _ => Ok(ClassItem::Byte(c)),
            }
        }

        fn class(&mut self) -> Result<(), String> {
            let mut body = String::new();
            let negated = self.peek(0) == Some(b'^');
            if negated {
                self.i += 1;
            }
            let mut first = true;
            loop {
                let c = self
                    .peek(0)
                    .ok_or("missing terminating ] for character class")?;
                if c == b']' && !first {
                    self.i += 1;
                    break;
                }
                if c == b']' {
                    // `]` first in the class is a literal.
                    self.i += 1;
                    lit(&mut body, b']');
                    first = false;
                    continue;
                }
                first = false;
                let item = self.class_item()?;
                let is_range =
                    self.peek(0) == Some(b'-') && self.peek(1).is_some_and(|b| b != b']');
                match item {
                    ClassItem::Byte(lo) if is_range => {
                        self.i += 1;
                        match self.class_item()? {
                            ClassItem::Byte(hi) => {
                                if hi < lo {
                                    return Err("range out of order in character class".into());
                                }
                                lit(&mut body, lo);
                                body.push('-');
                                lit(&mut body, hi);
                            }
                            ClassItem::Set(_) => {
                                return Err("invalid range in character class".into())
                            }
                        }
                    }
                    ClassItem::Byte(b) => lit(&mut body, b),
                    ClassItem::Set(_) if is_range => {
                        return Err("invalid range in character class".into())
                    }
                    ClassItem::Set(s) => body.push_str(&s),
                }
            }
            if body.is_empty() {
                // `[\E]`-like classes: PCRE2 would complain as well.
                return Err("empty character class".into());
            }
            self.out.push('[');
            if negated {
                self.out.push('^');
            }
            self.out.push_str(&body);
            self.out.push(']');
            Ok(())
        }
    }
}

/// A short message for a regex build error (the syntax error kind, not regex-syntax's
/// multi-line rendering of the translated pattern).
fn build_error_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(se) = s.downcast_ref::<regex_syntax::Error>() {
            return match se {
                regex_syntax::Error::Parse(p) => p.kind().to_string(),
                regex_syntax::Error::Translate(t) => t.kind().to_string(),
                other => other.to_string(),
            };
        }
        msg = format!("{}: {}", msg, s);
        src = s.source();
    }
    msg
}

/// Result of matching one regex against one subject, PCRE2_PARTIAL_SOFT style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchResult {
    None,
    Partial,
    Full,
}

/// A compiled AIDE regex (PCRE2 byte semantics, anchored at the start only).
#[derive(Clone)]
pub(crate) struct Regex {
    dfa: DFA,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Regex")
    }
}

impl Regex {
    /// Compile a PCRE2 pattern as AIDE 0.18.3 (Debian build) does.
    pub(crate) fn new(pattern: &[u8]) -> Result<Regex, String> {
        let translated = pcre::translate(pattern)?;
        let dfa = DFA::builder()
            .configure(DFA::config().match_kind(MatchKind::All))
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .thompson(
                thompson::Config::new()
                    .utf8(false)
                    .which_captures(thompson::WhichCaptures::None),
            )
            .build(&translated)
            .map_err(|e| build_error_message(&e))?;
        Ok(Regex { dfa })
    }

    pub(crate) fn create_cache(&self) -> Cache {
        self.dfa.create_cache()
    }

    /// Anchored match with partial-match detection.
    fn match_anchored(&self, cache: &mut Cache, hay: &[u8]) -> MatchResult {
        self.run(cache, hay, Anchored::Yes, true)
    }

    /// Unanchored search (used for `@@include DIR REGEX`).
    pub(crate) fn is_match_unanchored(&self, cache: &mut Cache, hay: &[u8]) -> bool {
        self.run(cache, hay, Anchored::No, false) == MatchResult::Full
    }

    fn run(&self, cache: &mut Cache, hay: &[u8], anchored: Anchored, partial: bool) -> MatchResult {
        let input = Input::new(hay).anchored(anchored);
        let dfa = &self.dfa;
        let Ok(mut sid) = dfa.start_state_forward(cache, &input) else {
            return MatchResult::None;
        };
        for &b in hay {
            sid = match dfa.next_state(cache, sid, b) {
                Ok(s) => s,
                Err(_) => return MatchResult::None,
            };
            if sid.is_tagged() {
                if sid.is_match() {
                    return MatchResult::Full;
                }
                if sid.is_dead() || sid.is_quit() {
                    return MatchResult::None;
                }
            }
        }
        match dfa.next_eoi_state(cache, sid) {
            Ok(s) if s.is_match() => MatchResult::Full,
            Ok(_) if partial && !hay.is_empty() => MatchResult::Partial,
            _ => MatchResult::None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The rule tree

#[derive(Debug, Clone)]
struct Node {
    path: Vec<u8>,
    parent: Option<u32>,
    /// Children in AIDE's list order (sorted by path, a new node before equal ones).
    children: Vec<u32>,
    /// Number of nodes from here to the root, the root counting 1 (AIDE's `treedepth`).
    depth: usize,
    sel: Vec<u32>,
    equ: Vec<u32>,
    neg: Vec<u32>,
}

impl Node {
    fn has_rules(&self) -> bool {
        !(self.sel.is_empty() && self.equ.is_empty() && self.neg.is_empty())
    }
}

/// AIDE's `strrxtok`: the literal directory prefix of a regex.
fn strrxtok(rx: &[u8]) -> Vec<u8> {
    let mut p = rx.to_vec();
    if p.is_empty() {
        return b"/".to_vec();
    }
    p[0] = b'/';
    let mut lastslash = 1usize;
    let mut i = 1usize;
    while i < p.len() {
        match p[i] {
            b'/' => lastslash = i,
            b'(' | b'^' | b'$' | b'?' | b'*' | b'[' => break,
            b'\\' => {
                p.remove(i);
            }
            _ => {}
        }
        i += 1;
    }
    p.truncate(lastslash.min(p.len()));
    if p.is_empty() {
        p.push(b'/');
    }
    p
}

/// AIDE's `strlastslash`: everything before the last `/` (at least `/`).
fn strlastslash(s: &[u8]) -> Vec<u8> {
    let mut lastslash = 1usize;
    for (i, &c) in s.iter().enumerate().skip(1) {
        if c == b'/' {
            lastslash = i;
        }
    }
    s[..lastslash.min(s.len())].to_vec()
}

/// AIDE's `strgetndirname`: the prefix of `path` before its `depth`-th `/`, or all of it.
fn strgetndirname(path: &[u8], depth: usize) -> &[u8] {
    let mut n = 0;
    for (i, &c) in path.iter().enumerate() {
        if c == b'/' {
            n += 1;
        }
        if n == depth {
            return &path[..i];
        }
    }
    path
}

/// The part of the rule tree that config evaluation builds.
#[derive(Debug, Clone)]
pub(crate) struct RuleSetBuilder {
    nodes: Vec<Node>,
    rules: Vec<Rule>,
    regexes: Vec<Regex>,
}

impl Default for RuleSetBuilder {
    fn default() -> Self {
        RuleSetBuilder::new()
    }
}

impl RuleSetBuilder {
    pub(crate) fn new() -> RuleSetBuilder {
        let root = Node {
            path: b"/".to_vec(),
            parent: None,
            children: Vec::new(),
            depth: 1,
            sel: Vec::new(),
            equ: Vec::new(),
            neg: Vec::new(),
        };
        RuleSetBuilder {
            nodes: vec![root],
            rules: Vec::new(),
            regexes: Vec::new(),
        }
    }

    /// AIDE's `get_seltree_node`, starting at node `n`.
    fn get_node(&self, n: u32, path: &[u8]) -> Option<u32> {
        let node = &self.nodes[n as usize];
        if node.path == path {
            return Some(n);
        }
        let tmp = strgetndirname(path, node.depth + 1);
        for &c in &node.children {
            if self.nodes[c as usize].path == tmp {
                if let Some(found) = self.get_node(c, path) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// AIDE's `new_seltree_node` (with a tree present).
    fn new_node(&mut self, path: &[u8], isrx: bool) -> u32 {
        let parent_path = if isrx {
            strrxtok(path)
        } else {
            strlastslash(path)
        };
        let parent = match self.get_node(0, &parent_path) {
            Some(p) => p,
            None => self.new_node(&parent_path, isrx),
        };
        let id = self.nodes.len() as u32;
        let depth = self.nodes[parent as usize].depth + 1;
        self.nodes.push(Node {
            path: path.to_vec(),
            parent: Some(parent),
            children: Vec::new(),
            depth,
            sel: Vec::new(),
            equ: Vec::new(),
            neg: Vec::new(),
        });
        // Sorted insert, a new node goes before nodes with an equal path.
        let pos = {
            let nodes = &self.nodes;
            nodes[parent as usize]
                .children
                .iter()
                .position(|&c| nodes[c as usize].path.as_slice() >= path)
        };
        let children = &mut self.nodes[parent as usize].children;
        match pos {
            Some(p) => children.insert(p, id),
            None => children.push(id),
        }
        id
    }

    /// Compile and attach a rule (AIDE's `add_rx_to_tree`). Errors are AIDE's messages without
    /// the file/line part.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        kind: RuleKind,
        regex: &[u8],
        restriction: Restriction,
        attrs: AttrSet,
        file: &str,
        line: usize,
        line_text: &str,
    ) -> Result<(), String> {
        let rx_text = String::from_utf8_lossy(regex);
        let compiled =
            Regex::new(regex).map_err(|e| format!("error in rule '{}': {}", rx_text, e))?;
        let rxtok = strrxtok(regex);
        let found = self.get_node(0, &rxtok);
        if rxtok.windows(2).any(|w| w == b"//") {
            return Err(format!("error in rule '{}': invalid double slash", rx_text));
        }
        let node = match found {
            Some(n) => n,
            None => self.new_node(&rxtok, true),
        };
        let id = self.rules.len() as u32;
        self.rules.push(Rule {
            kind,
            regex: regex.to_vec(),
            restriction,
            attrs: if kind == RuleKind::Negative {
                AttrSet::EMPTY
            } else {
                attrs
            },
            node: self.nodes[node as usize].path.clone(),
            file: file.to_string(),
            line,
            line_text: line_text.to_string(),
        });
        self.regexes.push(compiled);
        let n = &mut self.nodes[node as usize];
        match kind {
            RuleKind::Selective => n.sel.push(id),
            RuleKind::Equals => n.equ.push(id),
            RuleKind::Negative => n.neg.push(id),
        }
        Ok(())
    }

    pub(crate) fn build(self) -> RuleSet {
        // Map every node path to the node AIDE's lookup from the root returns for it.
        let mut by_path = HashMap::new();
        for n in &self.nodes {
            if !by_path.contains_key(&n.path) {
                if let Some(found) = self.get_node(0, &n.path) {
                    by_path.insert(n.path.clone(), found);
                }
            }
        }
        let db_out = self
            .rules
            .iter()
            .fold(AttrSet::EMPTY, |a, r| a.union(r.attrs));
        let regexes = Arc::new(self.regexes);
        let for_pool = Arc::clone(&regexes);
        let create: CacheFactory = Box::new(move || for_pool.iter().map(|_| None).collect());
        RuleSet {
            inner: Arc::new(Inner {
                nodes: self.nodes,
                rules: self.rules,
                regexes,
                by_path,
                db_out,
                pool: Pool::new(create),
            }),
        }
    }
}

type Caches = Vec<Option<Cache>>;
type CacheFactory =
    Box<dyn Fn() -> Caches + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>;

struct Inner {
    nodes: Vec<Node>,
    rules: Vec<Rule>,
    regexes: Arc<Vec<Regex>>,
    /// Node path -> the node `get_seltree_node(root, path)` finds.
    by_path: HashMap<Vec<u8>, u32>,
    db_out: AttrSet,
    /// Per-thread lazy-DFA caches, one slot per rule.
    pool: Pool<Caches, CacheFactory>,
}

/// The selection rules of a configuration. Cheap to clone, usable from many threads.
#[derive(Clone)]
pub struct RuleSet {
    inner: Arc<Inner>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.inner.rules)
            .finish()
    }
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSetBuilder::new().build()
    }
}

// AIDE's match flags (seltree.c).
const NEGATIVE_RULE_MATCH: u32 = 1 << 0;
const SELECTIVE_RULE_MATCH: u32 = 1 << 1;
const EQUAL_RULE_MATCH: u32 = 1 << 2;
const RESTRICTED_RULE_MATCH: u32 = 1 << 3;
const PARTIAL_RULE_MATCH: u32 = 1 << 4;
const RULE_MATCH: u32 = EQUAL_RULE_MATCH | SELECTIVE_RULE_MATCH;
const DEEP_EQUAL_MATCH: u32 = 1 << 5;
const DEEP_SELECTIVE_MATCH: u32 = 1 << 6;
const RECURSED_CALL: u32 = 1 << 7;
const TOP_LEVEL_CALL: u32 = 1 << 8;

const FT_DIR: u16 = 1 << 1;

/// Everything one `select` call needs.
struct Ctx<'a> {
    inner: &'a Inner,
    caches: &'a mut Caches,
    text: &'a [u8],
    ftype: u16,
    rule: Option<u32>,
}

impl Ctx<'_> {
    fn matches(&mut self, r: u32, subject: &[u8]) -> MatchResult {
        let rx = &self.inner.regexes[r as usize];
        let cache = self.caches[r as usize].get_or_insert_with(|| rx.create_cache());
        rx.match_anchored(cache, subject)
    }

    /// AIDE's `check_list_for_match`.
    fn check_list(
        &mut self,
        list: &[u32],
        subject: &[u8],
        ftype: u16,
        unrestricted_only: bool,
    ) -> u32 {
        let mut retval = 0;
        for &r in list {
            let restriction = self.inner.rules[r as usize].restriction.0;
            if unrestricted_only && restriction != 0 {
                continue;
            }
            match self.matches(r, subject) {
                MatchResult::Full => {
                    if restriction == 0 || ftype & restriction != 0 {
                        self.rule = Some(r);
                        retval = if restriction != 0 {
                            RESTRICTED_RULE_MATCH
                        } else {
                            RULE_MATCH
                        };
                        break;
                    }
                    retval = PARTIAL_RULE_MATCH;
                }
                MatchResult::Partial => retval = PARTIAL_RULE_MATCH,
                MatchResult::None => {}
            }
        }
        retval
    }

    /// AIDE's `check_node_for_match`.
    fn check_node(&mut self, node: Option<u32>, mut retval: u32) -> u32 {
        let Some(n) = node else {
            return retval;
        };
        let inner = self.inner;
        let nd = &inner.nodes[n as usize];
        let text = self.text;
        if nd.has_rules() {
            if retval & RECURSED_CALL == 0 {
                retval |= RECURSED_CALL;
                if !nd.equ.is_empty() {
                    match self.check_list(&nd.equ, text, self.ftype, false) {
                        RESTRICTED_RULE_MATCH | RULE_MATCH => {
                            retval |= EQUAL_RULE_MATCH | DEEP_EQUAL_MATCH
                        }
                        PARTIAL_RULE_MATCH => retval |= PARTIAL_RULE_MATCH,
                        _ => {}
                    }
                }
            }
            if retval & (DEEP_EQUAL_MATCH | DEEP_SELECTIVE_MATCH) == 0 && !nd.sel.is_empty() {
                match self.check_list(&nd.sel, text, self.ftype, false) {
                    RESTRICTED_RULE_MATCH | RULE_MATCH => {
                        retval |= SELECTIVE_RULE_MATCH | DEEP_SELECTIVE_MATCH
                    }
                    PARTIAL_RULE_MATCH => retval |= PARTIAL_RULE_MATCH,
                    _ => {}
                }
            }
            retval = self.check_node(nd.parent, retval & !TOP_LEVEL_CALL);
            if retval & (SELECTIVE_RULE_MATCH | EQUAL_RULE_MATCH) != 0 && !nd.neg.is_empty() {
                // Unrestricted negative rules also exclude everything below a matching directory.
                let mut plen = text.len();
                loop {
                    let cut = text[..plen].iter().rposition(|&c| c == b'/').unwrap_or(0);
                    plen = if cut != 0 { cut } else { 1.min(text.len()) };
                    let parent = &text[..plen];
                    if parent <= nd.path.as_slice() {
                        break;
                    }
                    if self.check_list(&nd.neg, parent, FT_DIR, true) == RULE_MATCH {
                        retval = NEGATIVE_RULE_MATCH;
                        break;
                    }
                }
                if retval != NEGATIVE_RULE_MATCH {
                    match self.check_list(&nd.neg, text, self.ftype, false) {
                        RESTRICTED_RULE_MATCH => retval = PARTIAL_RULE_MATCH,
                        RULE_MATCH => retval = NEGATIVE_RULE_MATCH,
                        _ => {}
                    }
                }
            }
        } else {
            retval = self.check_node(nd.parent, (retval | RECURSED_CALL) & !TOP_LEVEL_CALL);
        }
        if retval & TOP_LEVEL_CALL == 0 {
            if retval & (EQUAL_RULE_MATCH | SELECTIVE_RULE_MATCH) != 0 {
                retval &= EQUAL_RULE_MATCH | SELECTIVE_RULE_MATCH;
            } else {
                retval &= PARTIAL_RULE_MATCH;
            }
        }
        retval
    }
}

impl RuleSet {
    /// Decide what to do with `path` (the name after `root_prefix` removal, e.g. `b"/etc/passwd"`;
    /// `b"/"` for the root of the walk) of type `ftype`.
    ///
    /// This is AIDE's `check_seltree` plus the decisions of its disk walk (`scan_dir`):
    /// a selective or equals match is recorded and walked into (the equals case as in AIDE
    /// 0.18.5, which Debian's 0.18.3 package includes), a partial match (or a restricted
    /// negative match) of a directory is walked
    /// into without recording it, and a directory without any match is still walked into if
    /// the rule tree has a node for it (a rule applies somewhere below it). The root `/` is
    /// always walked into. The caller must only call `select` for paths whose parent directory
    /// was walked into, in a top-down walk (AIDE's dynamic tree nodes then make no difference).
    pub fn select(&self, path: &[u8], ftype: FileType) -> Selection {
        let inner = &*self.inner;
        let is_dir = ftype == FileType::Directory;
        if path.first() != Some(&b'/') {
            return Selection::Skip;
        }
        let is_root = path == b"/";
        let (retval, rule) = self.check(path, Restriction::bit(ftype));
        if retval & (SELECTIVE_RULE_MATCH | EQUAL_RULE_MATCH) != 0 {
            if let Some(r) = rule {
                // Debian's aide 0.18.3 carries the upstream 0.18.5 fix "child directory
                // processing on equal match": equals-matched directories are walked into too.
                return Selection::Record {
                    attrs: inner.rules[r as usize].attrs,
                    recurse: true,
                };
            }
        }
        if is_root {
            return Selection::Descend;
        }
        if !is_dir {
            return Selection::Skip;
        }
        if retval & PARTIAL_RULE_MATCH != 0 || inner.by_path.contains_key(path) {
            Selection::Descend
        } else {
            Selection::Skip
        }
    }

    /// AIDE's `check_seltree`: the match flags and the rule that matched.
    fn check(&self, path: &[u8], ftype: u16) -> (u32, Option<u32>) {
        let inner = &*self.inner;
        let mut retval = 0;
        let mut plen = path.len();
        let pnode = loop {
            let cut = path[..plen].iter().rposition(|&c| c == b'/').unwrap_or(0);
            plen = if cut != 0 { cut } else { 1 };
            if let Some(&n) = inner.by_path.get(&path[..plen]) {
                break n;
            }
            retval |= RECURSED_CALL;
            if plen == 1 {
                // Cannot happen: the root is always in the map.
                return (0, None);
            }
        };
        let mut guard = inner.pool.get();
        let mut ctx = Ctx {
            inner,
            caches: &mut guard,
            text: path,
            ftype,
            rule: None,
        };
        let r = ctx.check_node(Some(pnode), retval | TOP_LEVEL_CALL);
        (r, ctx.rule)
    }

    /// Union of the attributes of all selective and equals rules. The database columns are
    /// this plus [`crate::attr::ALWAYS_IN_DB`] (and `size` when `growing` or `S` is used).
    pub fn db_out_attrs(&self) -> AttrSet {
        self.inner.db_out
    }

    /// True if the configuration has no rules at all.
    pub fn is_empty(&self) -> bool {
        self.inner.rules.is_empty()
    }

    /// The rules in configuration order.
    pub fn rules(&self) -> &[Rule] {
        &self.inner.rules
    }

    /// Whether a selective or equals rule is attached at `dir` or below it: the configuration
    /// then asks for what is inside `dir` explicitly (used to decide on entering mount points).
    pub fn names_inside(&self, dir: &[u8]) -> bool {
        self.inner.rules.iter().any(|r| {
            r.kind != RuleKind::Negative
                && r.node.starts_with(dir)
                && (r.node.len() == dir.len() || r.node[dir.len()] == b'/' || dir == b"/")
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
                let on_way = root_bytes.starts_with(&name)
                    && root_bytes.get(name.len()) == Some(&b'/')
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
                    path.push(
                        (raw[j + 1] - b'0') * 64 + (raw[j + 2] - b'0') * 8 + (raw[j + 3] - b'0'),
                    );
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
}
