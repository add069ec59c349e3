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
use regex_automata::hybrid::dfa::Cache;
use regex_automata::util::pool::Pool;
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

mod regex;
use regex::MatchResult;
pub use regex::Regex;

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
pub(crate) mod tests;
