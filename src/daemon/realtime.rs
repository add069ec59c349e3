//! Realtime detection: the kernel tells the daemon which entries were created, deleted, moved,
//! had their attributes changed or were written and closed, and by whom, within milliseconds.
//!
//! - Before hardening, while the daemon still has CAP_SYS_ADMIN, [`prepare`] opens a fanotify
//!   group reporting directory handles, names and pidfds and marks each filesystem that may hold
//!   a configured root (the node root's, and its system mounts'). Nothing else needs the
//!   privilege: the daemon then drops to CAP_DAC_READ_SEARCH as before.
//! - [`Watcher::watch`] maps the handles of the directories a scan enters to their paths
//!   ([`Dirs`], rebuilt after each full scan): an event in a directory not in the map is not
//!   this node's, or not selected, and is dropped. That is how two nodes whose roots share one
//!   filesystem never see each other's writes.
//! - The reader thread turns each event into a path and its writer ([`writer::Namer`], read at
//!   once, while the writer may still run) and adds them to the [`Pending`] set, bounded: an
//!   overflow of the kernel's queue, a record that does not parse, or more pending paths than
//!   [`MAX_PENDING`] open a gap instead, and the daemon answers a gap with a full scan.
//! - The daemon takes the pending set after a short debounce and runs a focused check on it
//!   (fio-core's `check_focused`: the scanner's own measure and compare code).
//!
//! `open_by_handle_at` stays denied by the daemon's seccomp filter: handles are only compared
//! with those of known directories (`name_to_handle_at`), never opened.

pub mod fanotify;
pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fio_api::Writer;
use fio_core::entry::FileType;
use fio_core::select::{RuleSet, Selection};
use fio_core::walk::WalkBuilder;

use fanotify::{Event, Group, Handle};

/// Most directories mapped; beyond, the rest of the tree is covered by scans only (a gap that
/// stays open, saying so).
pub const MAX_DIRS: usize = 262_144;
/// Most paths waiting for a focused check; one more opens a gap (a full scan follows).
pub const MAX_PENDING: usize = 8_192;
/// Events keep coming for a moment after the first (an editor writes, renames, sets modes):
/// the focused check waits this long after the first event of a batch.
pub const DEBOUNCE: Duration = Duration::from_millis(250);
/// Most writers remembered per pending path (the first ones).
const WRITERS_PER_PATH: usize = fio_api::MAX_WRITERS;

/// The mount points below the node root whose filesystems are marked too, when they are
/// mounts of their own: the trees AIDE configurations watch.
const SYSTEM_TREES: [&str; 10] = [
    "boot", "etc", "usr", "opt", "root", "bin", "sbin", "lib", "lib64", "var",
];

/// The group and its marks, made while the daemon still has CAP_SYS_ADMIN.
pub struct Prepared {
    group: Group,
    /// The filesystems marked (st_dev) and what could not be marked, why.
    marked: Vec<u64>,
    pub unmarked: Vec<String>,
}

/// Open the group and mark the filesystems of `hostroot` and of its system trees. `Err`: no
/// realtime detection at all (the message says why: scans go on).
pub fn prepare(hostroot: &Path) -> Result<Prepared, String> {
    use std::os::unix::fs::MetadataExt;
    let group = Group::open()
        .map_err(|e| format!("fanotify with directory handles and names is not available: {e}"))?;
    let mut p = Prepared {
        group,
        marked: Vec::new(),
        unmarked: Vec::new(),
    };
    let trees =
        std::iter::once(hostroot.to_owned()).chain(SYSTEM_TREES.iter().map(|t| hostroot.join(t)));
    for tree in trees {
        let Ok(meta) = std::fs::metadata(&tree) else {
            continue;
        };
        if p.marked.contains(&meta.dev()) {
            continue;
        }
        match p.group.mark_filesystem(&tree) {
            Ok(()) => p.marked.push(meta.dev()),
            Err(e) => p
                .unmarked
                .push(format!("{}: filesystem not watched: {e}", tree.display())),
        }
    }
    if p.marked.is_empty() {
        return Err(format!(
            "no filesystem could be watched: {}",
            p.unmarked.join("; ")
        ));
    }
    Ok(p)
}

/// Directory handles and the paths they stand for (names as the scan sees them).
#[derive(Default)]
pub struct Dirs {
    by_handle: HashMap<Handle, Vec<u8>>,
    rules: Option<Arc<RuleSet>>,
    /// More directories than [`MAX_DIRS`]: some are not mapped.
    pub incomplete: bool,
}

impl Dirs {
    /// The directories `walk` enters, each with its handle.
    pub fn build(walk: &WalkBuilder, rules: Arc<RuleSet>) -> Dirs {
        let mut d = Dirs {
            rules: Some(rules),
            ..Dirs::default()
        };
        walk.directories(|path, _| {
            if d.by_handle.len() >= MAX_DIRS {
                d.incomplete = true;
                return false;
            }
            if let Ok(h) = fanotify::handle_of(Path::new(std::ffi::OsStr::from_bytes(path))) {
                d.by_handle.insert(h, path.to_vec());
            }
            true
        });
        d
    }

    pub fn len(&self) -> usize {
        self.by_handle.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_handle.is_empty()
    }

    /// The path an event names, and whether it is a directory; `None` for an event outside
    /// the mapped directories or on an entry the rules do not select.
    fn resolve(&self, ev: &Event) -> Option<(Vec<u8>, bool)> {
        let is_dir = ev.mask & libc::FAN_ONDIR != 0;
        let path = match &ev.dir {
            Some((dir, name)) => {
                let parent = self.by_handle.get(dir)?;
                if name.is_empty() {
                    parent.clone()
                } else {
                    let mut p = parent.clone();
                    if p.last() != Some(&b'/') {
                        p.push(b'/');
                    }
                    p.extend_from_slice(name);
                    p
                }
            }
            None => self.by_handle.get(ev.object.as_ref()?)?.clone(),
        };
        let rules = self.rules.as_ref()?;
        let kinds: &[FileType] = if is_dir {
            &[FileType::Directory]
        } else {
            &[FileType::Regular, FileType::Symlink]
        };
        kinds
            .iter()
            .any(|k| rules.select(&path, *k) != Selection::Skip)
            .then_some((path, is_dir))
    }

    /// A directory created (or moved) below a mapped one: map it too.
    fn add(&mut self, path: &[u8]) {
        if self.by_handle.len() >= MAX_DIRS {
            self.incomplete = true;
            return;
        }
        if let Ok(h) = fanotify::handle_of(Path::new(std::ffi::OsStr::from_bytes(path))) {
            self.by_handle.insert(h, path.to_vec());
        }
    }
}

/// What the reader thread collected since the daemon last took it.
#[derive(Debug, Default)]
pub struct Pending {
    /// Paths the kernel named, with the writers of their events.
    pub paths: BTreeMap<Vec<u8>, Vec<Writer>>,
    /// A gap opened: when, and why. The daemon answers with a full scan.
    pub gap: Option<(SystemTime, String)>,
    /// A mapped directory was moved: the map must be rebuilt.
    pub rebuild: bool,
}

impl Pending {
    fn open_gap(&mut self, cause: String) {
        tracing::warn!("realtime gap: {cause}: a full scan follows");
        self.paths.clear();
        self.gap.get_or_insert((SystemTime::now(), cause));
    }

    fn add(&mut self, path: Vec<u8>, writer: Writer) {
        if self.gap.is_some() {
            return;
        }
        if self.paths.len() >= MAX_PENDING && !self.paths.contains_key(&path) {
            self.open_gap(format!(
                "more than {MAX_PENDING} entries changed before they could be checked"
            ));
            return;
        }
        let writers = self.paths.entry(path).or_default();
        if writers.len() < WRITERS_PER_PATH && !writers.contains(&writer) {
            writers.push(writer);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.gap.is_none() && !self.rebuild
    }
}

struct Inner {
    dirs: Dirs,
    pending: Pending,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
}

/// The running watcher (see the module documentation).
#[derive(Clone)]
pub struct Watcher {
    shared: Arc<Shared>,
    /// Filesystems that could not be watched, why.
    pub unmarked: Arc<Vec<String>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (plain inserts): go on.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Watcher {
    /// Start the reader thread (after hardening: it inherits the confinement). `attribution`
    /// off: writers are not read, every writer is unattributed.
    pub fn start(
        prepared: Prepared,
        hostroot: &Path,
        attribution: bool,
    ) -> std::io::Result<Watcher> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                dirs: Dirs::default(),
                pending: Pending::default(),
            }),
            wake: tokio::sync::Notify::new(),
        });
        let namer = writer::Namer::new(Path::new("/proc"), hostroot);
        let (s, group) = (shared.clone(), prepared.group);
        std::thread::Builder::new()
            .name("fio-realtime".into())
            .spawn(move || read_events(&group, &s, namer, attribution))?;
        Ok(Watcher {
            shared,
            unmarked: Arc::new(prepared.unmarked),
        })
    }

    /// Map the directories `walk` enters (blocking: run off the runtime). Returns how many,
    /// and whether that is all of them ([`MAX_DIRS`]).
    pub fn watch(&self, walk: &WalkBuilder, rules: Arc<RuleSet>) -> (usize, bool) {
        let dirs = Dirs::build(walk, rules);
        let seen = (dirs.len(), !dirs.incomplete);
        let mut inner = self.shared.lock();
        inner.dirs = dirs;
        inner.pending.rebuild = false;
        seen
    }

    /// Wait until something is pending.
    pub async fn changed(&self) {
        self.shared.wake.notified().await
    }

    /// What is pending, leaving nothing.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut self.shared.lock().pending)
    }

    /// Forget what is pending (a full scan is about to look at everything).
    pub fn clear(&self) {
        let mut inner = self.shared.lock();
        inner.pending.paths.clear();
        inner.pending.gap = None;
    }

    pub fn has_pending(&self) -> bool {
        !self.shared.lock().pending.is_empty()
    }
}

/// The reader thread: read, resolve, name, add; forever.
fn read_events(group: &Group, shared: &Shared, mut namer: writer::Namer, attribution: bool) {
    let own = std::process::id() as i32;
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::new();
    loop {
        events.clear();
        let parse_error = match group.read(&mut buf, &mut events) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                shared
                    .lock()
                    .pending
                    .open_gap(format!("reading fanotify events: {e}"));
                shared.wake.notify_one();
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let mut any = parse_error.is_some();
        if let Some(e) = parse_error {
            shared.lock().pending.open_gap(e.to_string());
        }
        for ev in events.drain(..) {
            any |= handle_event(ev, shared, &mut namer, own, attribution);
        }
        if any {
            shared.wake.notify_one();
        }
    }
}

/// One event: true when it added something for the daemon.
fn handle_event(
    ev: Event,
    shared: &Shared,
    namer: &mut writer::Namer,
    own: i32,
    attribution: bool,
) -> bool {
    if ev.overflowed() {
        if let Some(fd) = ev.pidfd {
            fanotify::close(fd);
        }
        shared
            .lock()
            .pending
            .open_gap("the kernel's event queue overflowed".into());
        return true;
    }
    let resolved = shared.lock().dirs.resolve(&ev);
    let Some((path, is_dir)) = resolved.filter(|_| ev.pid != own) else {
        if let Some(fd) = ev.pidfd {
            fanotify::close(fd);
        }
        return false;
    };
    let writer = if attribution {
        namer.name(ev.pid, ev.pidfd)
    } else {
        if let Some(fd) = ev.pidfd {
            fanotify::close(fd);
        }
        Writer::default()
    };
    let mut inner = shared.lock();
    if is_dir {
        if ev.mask & (libc::FAN_CREATE | libc::FAN_MOVED_TO) != 0 {
            inner.dirs.add(&path);
        }
        if ev.mask & (libc::FAN_MOVED_FROM | libc::FAN_MOVE_SELF) != 0 {
            inner.pending.rebuild = true;
        }
    }
    inner.pending.add(path, writer);
    true
}

#[cfg(test)]
mod tests;
