//! The parallel, ordered walk of a host root.
//!
//! One thread reads directories and `lstat`s their children (cheap, and it must be sequential to
//! keep AIDE's order); every selected entry is measured (xattrs, ACLs, hashes) on the rayon pool;
//! results are handed back in AIDE's order, so a caller can stream them into a database or merge
//! them with one without holding the tree in memory.

use crate::entry::{path_order, Entry, FileType};
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
}

#[derive(Debug, Default, Clone, Copy)]
pub struct WalkStats {
    pub entries: u64,
    pub dirs_read: u64,
    pub errors: u64,
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
        }
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
    /// Stops at the first error `sink` returns.
    pub fn run<E>(self, mut sink: impl FnMut(Entry) -> Result<(), E>) -> Result<WalkStats, E> {
        // Work goes out in batches: one hand-off per entry would cost more than measuring a
        // small file. The token channel is a counting semaphore bounding batches in flight.
        let (res_tx, res_rx) = sync_channel::<(u64, Vec<Entry>)>(self.window);
        let (tok_tx, tok_rx) = sync_channel::<()>(self.window);
        let producer = {
            let me = self.clone();
            std::thread::Builder::new()
                .name("fio-walk".into())
                .spawn(move || me.produce(res_tx, tok_tx))
                .expect("spawn walker thread")
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
        let stats = producer.join().unwrap_or_default();
        result.map(|_| stats)
    }

    fn produce(&self, results: SyncSender<(u64, Vec<Entry>)>, tokens: SyncSender<()>) -> WalkStats {
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
        let meta = match std::fs::symlink_metadata(OsStr::from_bytes(&root_path)) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("cannot lstat root {}: {e}", show(&root_path));
                st.errors += 1;
                return st;
            }
        };
        // Depth-first with an explicit stack of (dir path, name, dev, sorted children, next index).
        let sel = self.rules.select(b"/", FileType::from_mode(meta.mode()));
        let root_dev = meta.dev();
        let enter_root = match sel {
            Selection::Skip => false,
            Selection::Descend => true,
            Selection::Record { attrs, recurse } => {
                if !batches.push(Job {
                    path: root_path.clone(),
                    name: b"/".to_vec(),
                    meta: meta.clone(),
                    attrs,
                }) {
                    return st;
                }
                recurse
            }
        };
        if !enter_root || !meta.is_dir() {
            batches.flush();
            st.entries = batches.entries;
            return st;
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
            let mut descend = match sel {
                Selection::Skip => false,
                Selection::Descend => true,
                Selection::Record { recurse, .. } => recurse,
            };
            descend &= ftype == FileType::Directory;
            if descend
                && meta.dev() != parent_dev
                && !self.cross_mounts
                && sel != Selection::Descend
                && !self.rules.names_inside(&name)
            {
                tracing::info!(
                    "not descending into mount point {} (no rule names a path inside it)",
                    show(&name)
                );
                descend = false;
            }
            if let Selection::Record { attrs, .. } = sel {
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
        st.entries = batches.entries;
        st
    }

    /// The children of a directory, sorted by name, each with its `lstat`.
    fn read_children(&self, name: &[u8], st: &mut WalkStats) -> Vec<(Vec<u8>, Metadata)> {
        let mut path = self.root_prefix.clone();
        path.extend_from_slice(name);
        let rd = match std::fs::read_dir(OsStr::from_bytes(&path)) {
            Ok(rd) => rd,
            Err(e) => {
                tracing::warn!("open_dir(): cannot open '{}': {e}", show(&path));
                st.errors += 1;
                return Vec::new();
            }
        };
        st.dirs_read += 1;
        let mut out = Vec::new();
        for de in rd {
            let de = match de {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("read_dir(): error reading '{}': {e}", show(&path));
                    st.errors += 1;
                    break;
                }
            };
            // DirEntry::metadata is fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW): never follows links.
            match de.metadata() {
                Ok(m) => out.push((de.file_name().as_bytes().to_vec(), m)),
                // Vanished between readdir and lstat: AIDE warns and goes on.
                Err(e) => tracing::warn!(
                    "lstat() failed for {}/{}: {e}",
                    show(&path),
                    show(de.file_name().as_bytes())
                ),
            }
        }
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

const BATCH_ENTRIES: usize = 256;
const BATCH_BYTES: u64 = 4 << 20;

impl Batcher {
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
