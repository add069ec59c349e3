//! AIDE's regexes: PCRE2 (byte mode) patterns translated into regex-syntax, matched with
//! PCRE2's partial-match semantics.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};
use std::fmt;

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
pub(super) enum MatchResult {
    None,
    Partial,
    Full,
}

/// A compiled AIDE regex (PCRE2 byte semantics, anchored at the start only).
#[derive(Clone)]
pub struct Regex {
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
    pub(super) fn match_anchored(&self, cache: &mut Cache, hay: &[u8]) -> MatchResult {
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
