//! The parallel, ordered walk of a host root.
//!
//! One thread reads directories and `lstat`s their children (cheap, and it must be sequential to
//! keep AIDE's order); every selected entry is measured (xattrs, ACLs, hashes) on the rayon pool;
//! results are handed back in AIDE's order, so a caller can stream them into a database or merge
//! them with one without holding the tree in memory.
//!
//! Errors are values: an entry that cannot be read is a [`WalkError`] in the [`WalkStats`] (the
//! walk goes on, as AIDE's does), while a walk that cannot run at all (the root cannot be
//! read, the walker thread panicked) is a [`WalkFailed`], never a short walk.

use crate::entry::{path_order, Entry, FileType};
use crate::focus::Focus;
use crate::measure::{measure, show, MeasureOptions};
use crate::select::{RuleSet, Selection};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

/// Builds a walk; see the module docs.
#[derive(Clone)]
pub struct WalkBuilder {
    root_prefix: Vec<u8>,
    rules: Arc<RuleSet>,
    measure: MeasureOptions,
    window: usize,
    cross_mounts: bool,
    focus: Option<Arc<Focus>>,
}

#[derive(Debug, Default, Clone)]
pub struct WalkStats {
    pub entries: u64,
    pub dirs_read: u64,
    /// Entries that could not be read, in walk order.
    pub errors: Vec<WalkError>,
}

/// An entry the walk could not read; everything below it is missing from the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    /// The path as AIDE names it (with the root prefix).
    pub path: Vec<u8>,
    pub kind: WalkErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkErrorKind {
    /// The directory could not be opened.
    OpenDir,
    /// Reading the directory failed part way.
    ReadDir,
    /// A directory entry could not be `lstat`ed (it vanished, or is unreadable).
    Lstat,
}

impl WalkErrorKind {
    /// AIDE's name of the failing call, as in its warnings.
    pub fn call(self) -> &'static str {
        match self {
            WalkErrorKind::OpenDir => "open_dir()",
            WalkErrorKind::ReadDir => "read_dir()",
            WalkErrorKind::Lstat => "lstat()",
        }
    }
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.kind.call(),
            show(&self.path),
            self.message
        )
    }
}

/// The walk could not run: nothing it produced may be used (never a truncated baseline).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WalkFailed {
    #[error("cannot lstat the root {path}: {message}")]
    Root { path: String, message: String },
    #[error("the walker thread failed: {0}")]
    Panicked(String),
    #[error("cannot start the walker thread: {0}")]
    Spawn(String),
}

struct Job {
    path: Vec<u8>,
    name: Vec<u8>,
    meta: Metadata,
    attrs: crate::attr::AttrSet,
}

impl WalkBuilder {
    /// Walk the tree under `root_prefix` (empty for `/`), selecting with `rules`.
    pub fn new(root_prefix: &[u8], rules: Arc<RuleSet>) -> WalkBuilder {
        let mut p = root_prefix.to_vec();
        while p.last() == Some(&b'/') {
            p.pop();
        }
        WalkBuilder {
            root_prefix: p,
            rules,
            measure: MeasureOptions::default(),
            window: 128,
            cross_mounts: false,
            focus: None,
        }
    }

    /// Walk only the focused paths and what is below them ([`Focus`]): the directories on the
    /// way are read for the names leading there only, and not recorded.
    pub fn focus(mut self, focus: Arc<Focus>) -> Self {
        self.focus = Some(focus);
        self
    }

    /// `name` is recorded and read in full (no focus, or focused).
    fn covered(&self, name: &[u8]) -> bool {
        self.focus.as_ref().is_none_or(|f| f.covers(name))
    }

    pub fn measure_options(mut self, m: MeasureOptions) -> Self {
        self.measure = m;
        self
    }

    /// Batches of entries measured ahead of the consumer at most.
    pub fn window(mut self, n: usize) -> Self {
        self.window = n.max(1);
        self
    }

    /// Descend into mount points even where no rule names a path inside them. By default a
    /// directory on another filesystem than its parent is recorded but only entered when a rule
    /// points below it (so `/ R` does not wander into `/proc`, but `/boot/ R` still scans /boot).
    pub fn cross_mounts(mut self, yes: bool) -> Self {
        self.cross_mounts = yes;
        self
    }

    /// Run the walk, calling `sink` with every selected entry in AIDE's order on this thread.
    /// Stops at the first error `sink` returns; a walk that could not run is `E::from` its
    /// [`WalkFailed`], even when `sink` accepted every entry it got.
    pub fn run<E: From<WalkFailed>>(
        self,
        mut sink: impl FnMut(Entry) -> Result<(), E>,
    ) -> Result<WalkStats, E> {
        // Work goes out in batches: one hand-off per entry would cost more than measuring a
        // small file. The token channel is a counting semaphore bounding batches in flight.
        let (res_tx, res_rx) = sync_channel::<(u64, Vec<Entry>)>(self.window);
        let (tok_tx, tok_rx) = sync_channel::<()>(self.window);
        let producer = {
            let me = self.clone();
            std::thread::Builder::new()
                .name("fio-walk".into())
                .spawn(move || me.produce(res_tx, tok_tx))
                .map_err(|e| WalkFailed::Spawn(e.to_string()))?
        };
        let mut pending: BTreeMap<u64, Vec<Entry>> = BTreeMap::new();
        let mut next = 0u64;
        let mut result = Ok(());
        'recv: for (seq, batch) in res_rx.iter() {
            pending.insert(seq, batch);
            while let Some(batch) = pending.remove(&next) {
                next += 1;
                let _ = tok_rx.recv();
                for e in batch {
                    result = sink(e);
                    if result.is_err() {
                        break 'recv;
                    }
                }
            }
        }
        // Unblock the producer if we stopped early.
        drop(res_rx);
        drop(tok_rx);
        let produced = producer.join().map_err(|panic| {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panicked".into());
            WalkFailed::Panicked(msg)
        });
        result?;
        // A batch lost to a panic on the pool leaves a gap the consumer never saw.
        let stats = produced??;
        if next < stats.batches {
            return Err(WalkFailed::Panicked(format!(
                "{} of {} batches of entries were never measured",
                stats.batches - next,
                stats.batches
            ))
            .into());
        }
        Ok(stats.stats)
    }

    fn produce(
        &self,
        results: SyncSender<(u64, Vec<Entry>)>,
        tokens: SyncSender<()>,
    ) -> Result<Produced, WalkFailed> {
        let mut st = WalkStats::default();
        let mut batches = Batcher {
            results,
            tokens,
            opts: self.measure,
            jobs: Vec::new(),
            bytes: 0,
            seq: 0,
            entries: 0,
        };
        let root_path = if self.root_prefix.is_empty() {
            b"/".to_vec()
        } else {
            self.root_prefix.clone()
        };
        let meta = std::fs::symlink_metadata(OsStr::from_bytes(&root_path)).map_err(|e| {
            WalkFailed::Root {
                path: show(&root_path),
                message: e.to_string(),
            }
        })?;
        // Depth-first with an explicit stack of (dir path, name, dev, sorted children, next index).
        let sel = self.rules.select(b"/", FileType::from_mode(meta.mode()));
        let root_dev = meta.dev();
        let enter_root = match sel {
            Selection::Skip => false,
            Selection::Descend => true,
            Selection::Record { recurse, .. } if !self.covered(b"/") => recurse,
            Selection::Record { attrs, recurse } => {
                if !batches.push(Job {
                    path: root_path.clone(),
                    name: b"/".to_vec(),
                    meta: meta.clone(),
                    attrs,
                }) {
                    return Ok(batches.produced(st));
                }
                recurse
            }
        };
        if !enter_root || !meta.is_dir() {
            batches.flush();
            return Ok(batches.produced(st));
        }
        struct Frame {
            name: Vec<u8>,
            dev: u64,
            children: Vec<(Vec<u8>, Metadata)>,
            next: usize,
        }
        let mut stack = vec![Frame {
            name: b"/".to_vec(),
            dev: root_dev,
            children: Vec::new(),
            next: 0,
        }];
        stack[0].children = self.read_children(b"/", &mut st);
        'outer: while let Some(top) = stack.last_mut() {
            if top.next >= top.children.len() {
                stack.pop();
                continue;
            }
            let (child, meta) = {
                let c = &mut top.children[top.next];
                top.next += 1;
                (std::mem::take(&mut c.0), c.1.clone())
            };
            let mut name = top.name.clone();
            if name != b"/" {
                name.push(b'/');
            }
            name.extend_from_slice(&child);
            let parent_dev = top.dev;
            let ftype = FileType::from_mode(meta.mode());
            let sel = self.rules.select(&name, ftype);
            let descend = self.descends(&name, sel, ftype, meta.dev() != parent_dev);
            let covered = self.covered(&name);
            if !covered
                && self
                    .focus
                    .as_ref()
                    .is_some_and(|f| f.next_names(&name).is_empty())
            {
                // Neither focused nor on the way to a focused path.
                continue;
            }
            if let (true, Selection::Record { attrs, .. }) = (covered, sel) {
                let mut path = self.root_prefix.clone();
                path.extend_from_slice(&name);
                if !batches.push(Job {
                    path,
                    name: name.clone(),
                    meta: meta.clone(),
                    attrs,
                }) {
                    break 'outer;
                }
            }
            if descend {
                let children = self.read_children(&name, &mut st);
                stack.push(Frame {
                    name,
                    dev: meta.dev(),
                    children,
                    next: 0,
                });
            }
        }
        batches.flush();
        Ok(batches.produced(st))
    }

    /// Whether the walk enters `name`, selected as `sel`, of type `ftype`, on another
    /// filesystem than its parent when `mount_point`.
    fn descends(&self, name: &[u8], sel: Selection, ftype: FileType, mount_point: bool) -> bool {
        let descend = match sel {
            Selection::Skip => false,
            Selection::Descend => true,
            Selection::Record { recurse, .. } => recurse,
        };
        if !descend || ftype != FileType::Directory {
            return false;
        }
        if mount_point
            && !self.cross_mounts
            && sel != Selection::Descend
            && !self.rules.names_inside(name)
        {
            tracing::info!(
                "not descending into mount point {} (no rule names a path inside it)",
                show(name)
            );
            return false;
        }
        true
    }

    /// Every directory the walk would enter, each after its parent, with its `lstat` (the root
    /// first, when it is entered): what a watcher of the walked tree watches. Nothing is measured; entries
    /// that cannot be read are skipped as the walk skips them. Stops when `sink` says false.
    pub fn directories(&self, mut sink: impl FnMut(&[u8], &Metadata) -> bool) {
        let root_path = if self.root_prefix.is_empty() {
            b"/".to_vec()
        } else {
            self.root_prefix.clone()
        };
        let Ok(meta) = std::fs::symlink_metadata(OsStr::from_bytes(&root_path)) else {
            return;
        };
        if !meta.is_dir()
            || self.rules.select(b"/", FileType::Directory) == Selection::Skip
            || !sink(&root_path, &meta)
        {
            return;
        }
        let mut st = WalkStats::default();
        let mut stack = vec![(b"/".to_vec(), meta.dev())];
        while let Some((dir, dev)) = stack.pop() {
            for (child, meta) in self.read_children(&dir, &mut st) {
                let mut name = dir.clone();
                if name != b"/" {
                    name.push(b'/');
                }
                name.extend_from_slice(&child);
                let ftype = FileType::from_mode(meta.mode());
                let sel = self.rules.select(&name, ftype);
                if self.descends(&name, sel, ftype, meta.dev() != dev) {
                    let mut path = self.root_prefix.clone();
                    path.extend_from_slice(&name);
                    if !sink(&path, &meta) {
                        return;
                    }
                    stack.push((name, meta.dev()));
                }
            }
        }
    }

    /// The children of a directory, sorted by name, each with its `lstat`.
    fn read_children(&self, name: &[u8], st: &mut WalkStats) -> Vec<(Vec<u8>, Metadata)> {
        let mut path = self.root_prefix.clone();
        path.extend_from_slice(name);
        let mut error = |path: Vec<u8>, kind: WalkErrorKind, e: std::io::Error| {
            let err = WalkError {
                path,
                kind,
                message: e.to_string(),
            };
            tracing::warn!("{err}");
            st.errors.push(err);
        };
        if let Some(names) = self
            .focus
            .as_ref()
            .filter(|f| !f.covers(name))
            .map(|f| f.next_names(name))
        {
            return names
                .into_iter()
                .filter_map(|child| {
                    let mut p = path.clone();
                    if p.last() != Some(&b'/') {
                        p.push(b'/');
                    }
                    p.extend_from_slice(&child);
                    match std::fs::symlink_metadata(OsStr::from_bytes(&p)) {
                        Ok(m) => Some((child, m)),
                        // Gone: the comparison reports it removed.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                        Err(e) => {
                            error(p, WalkErrorKind::Lstat, e);
                            None
                        }
                    }
                })
                .collect();
        }
        let rd = match std::fs::read_dir(OsStr::from_bytes(&path)) {
            Ok(rd) => rd,
            Err(e) => {
                error(path, WalkErrorKind::OpenDir, e);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for de in rd {
            let de = match de {
                Ok(d) => d,
                Err(e) => {
                    error(path.clone(), WalkErrorKind::ReadDir, e);
                    break;
                }
            };
            // DirEntry::metadata is fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW): never follows links.
            match de.metadata() {
                Ok(m) => out.push((de.file_name().as_bytes().to_vec(), m)),
                // Vanished between readdir and lstat (or unreadable): AIDE warns and goes on.
                Err(e) => {
                    let mut p = path.clone();
                    p.push(b'/');
                    p.extend_from_slice(de.file_name().as_bytes());
                    error(p, WalkErrorKind::Lstat, e);
                }
            }
        }
        st.dirs_read += 1;
        out.sort_by(|a, b| path_order(&a.0, &b.0));
        out
    }
}

/// Groups jobs and sends each group to the rayon pool; a group is closed after many small files
/// or a few MiB of file data, so large files still spread over all cores.
struct Batcher {
    results: SyncSender<(u64, Vec<Entry>)>,
    tokens: SyncSender<()>,
    opts: MeasureOptions,
    jobs: Vec<Job>,
    bytes: u64,
    seq: u64,
    entries: u64,
}

/// What the producer made: the stats and how many batches it sent.
struct Produced {
    stats: WalkStats,
    batches: u64,
}

const BATCH_ENTRIES: usize = 256;
const BATCH_BYTES: u64 = 4 << 20;

impl Batcher {
    fn produced(&self, mut stats: WalkStats) -> Produced {
        stats.entries = self.entries;
        Produced {
            stats,
            batches: self.seq,
        }
    }

    /// False once the consumer has gone away.
    fn push(&mut self, job: Job) -> bool {
        if job.meta.is_file() {
            self.bytes += job.meta.len();
        }
        self.jobs.push(job);
        self.entries += 1;
        if self.jobs.len() >= BATCH_ENTRIES || self.bytes >= BATCH_BYTES {
            return self.flush();
        }
        true
    }

    fn flush(&mut self) -> bool {
        if self.jobs.is_empty() {
            return true;
        }
        if self.tokens.send(()).is_err() {
            return false;
        }
        let jobs = std::mem::take(&mut self.jobs);
        self.bytes = 0;
        let (seq, results, opts) = (self.seq, self.results.clone(), self.opts);
        self.seq += 1;
        rayon::spawn_fifo(move || {
            let out: Vec<Entry> = jobs
                .into_iter()
                .map(|j| measure(&j.path, j.name, &j.meta, j.attrs, &opts))
                .collect();
            let _ = results.send((seq, out));
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LoadOptions};
    use std::path::Path;

    /// The directories a watcher watches are the ones the walk enters: excluded ones and
    /// their subtrees are not among them; a focused walk records only the focused subtree.
    #[test]
    fn directories_and_a_focused_walk_follow_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["etc/a/b", "etc/skip/deep", "usr/x"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("etc/a/b/f"), b"f").unwrap();
        std::fs::write(root.join("etc/a/g"), b"g").unwrap();
        let r = root.display();
        let cfg = Config::parse_str(
            &format!("{r}/etc p\n!{r}/etc/skip\n"),
            Path::new("aide.conf"),
            &LoadOptions::default(),
        )
        .unwrap();
        let walk = WalkBuilder::new(b"", Arc::new(cfg.rules.clone()));
        let mut dirs = Vec::new();
        walk.directories(|p, _| {
            dirs.push(String::from_utf8_lossy(p).into_owned());
            true
        });
        let at = |s: &str| format!("{r}{s}");
        for want in ["/etc", "/etc/a", "/etc/a/b"] {
            assert!(dirs.contains(&at(want)), "{want} in {dirs:?}");
        }
        assert!(!dirs
            .iter()
            .any(|d| d.contains("skip") || d.ends_with("/usr/x")));

        let focus = Focus::new([at("/etc/a/b").into_bytes()]);
        let mut names = Vec::new();
        walk.focus(Arc::new(focus))
            .run(|e| -> Result<(), WalkFailed> {
                names.push(String::from_utf8_lossy(&e.name).into_owned());
                Ok(())
            })
            .unwrap();
        assert_eq!(names, [at("/etc/a/b"), at("/etc/a/b/f")]);
    }
}
