//! The daemon's view of the host, checked against the host's own (issue 22, attack 5).
//!
//! Root on a node can enter the daemon's mount namespace and mount the original of a file over
//! the changed one there only: every scan then reads the original. Before and after every scan
//! the daemon compares the mounts it sees under the host root with the mount tables of the
//! node's kubelet and container runtime (the processes that resolved the hostPath `/` the
//! daemon's `/hostroot` is): `/proc/<pid>/mountinfo` is readable without any capability, and
//! its paths are relative to that process's root, so they compare with ours below the host
//! root. A mounted tree is identified by its device and the directory of it that is mounted
//! ([`Key`]).
//!
//! - A mount only the daemon sees (not one of its own writable binds) alters what it reads:
//!   the node is `Errored` ("view of the host altered"), the mount named.
//! - A mount the host has and the daemon lacks (unmounted in its namespace) too, when the
//!   host's mount would have propagated to the daemon (its parent is shared).
//! - Files covered by a mount in the host's own namespace (a file-level bind) are reported:
//!   every process of the node reads the covering content, the scan included.
//! - Every result carries the digest of the daemon's view ([`Observation::digest`]).
//!
//! A difference is reported only if it persists over [`ATTEMPTS`] reads: mounts come and go on
//! a node (pod volumes), and a table read between a mount and its propagation would differ.
//! What this cannot see: a mount made in the host's namespace (then everything on the node
//! reads the same lie, and a covered file is reported), a process that fakes the kubelet's
//! table (it would need the lowest-level name and root; a decoy can only add differences),
//! a mount that exists only while neither check runs, and a compromised kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One line of `/proc/<pid>/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    pub parent: u64,
    /// `major:minor` of the mounted filesystem.
    pub dev: String,
    /// The directory of that filesystem mounted here.
    pub root: PathBuf,
    /// Where, relative to the reading process's root.
    pub point: PathBuf,
    /// Per-mount flags (`ro`, `nosuid`, ...), as `mount(2)` takes them.
    pub flags: libc::c_ulong,
    /// Propagation: `shared:N` among the optional fields.
    pub shared: bool,
    pub unbindable: bool,
    pub fstype: String,
    pub source: String,
}

/// What a mount shows: its filesystem and the directory of it.
pub type Key = (String, PathBuf);

impl Mount {
    pub fn key(&self) -> Key {
        (self.dev.clone(), self.root.clone())
    }
}

/// The lines of a mount table; a line that is not one (the kernel writes none) is skipped.
pub fn parse(text: &[u8]) -> Vec<Mount> {
    text.split(|&b| b == b'\n').filter_map(parse_line).collect()
}

fn parse_line(line: &[u8]) -> Option<Mount> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let sep = fields.iter().position(|f| *f == b"-")?;
    if sep < 6 || fields.len() < sep + 3 {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8_lossy(&unescape_octal(b)).into_owned();
    let path = |b: &[u8]| PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(b)));
    let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    let mut flags = 0;
    for opt in fields[5].split(|&b| b == b',') {
        flags |= match opt {
            b"ro" => libc::MS_RDONLY,
            b"nosuid" => libc::MS_NOSUID,
            b"nodev" => libc::MS_NODEV,
            b"noexec" => libc::MS_NOEXEC,
            b"noatime" => libc::MS_NOATIME,
            b"nodiratime" => libc::MS_NODIRATIME,
            b"relatime" => libc::MS_RELATIME,
            b"strictatime" => libc::MS_STRICTATIME,
            _ => 0,
        };
    }
    let optional = &fields[6..sep];
    Some(Mount {
        id: number(fields[0])?,
        parent: number(fields[1])?,
        dev: text(fields[2]),
        root: path(fields[3]),
        point: path(fields[4]),
        flags,
        shared: optional.iter().any(|f| f.starts_with(b"shared:")),
        unbindable: optional.contains(&&b"unbindable"[..]),
        fstype: text(fields[sep + 1]),
        source: text(fields[sep + 2]),
    })
}

fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = s[i + 1..i + 4]
                .iter()
                .fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// `point` as on the node (`/hostroot/etc` → `/etc`, `/hostroot` → `/`), if below `hostroot`.
pub fn on_node(point: &Path, hostroot: &Path) -> Option<PathBuf> {
    let rest = point.strip_prefix(hostroot).ok()?;
    Some(Path::new("/").join(rest))
}

/// Which side lacks a mount the other has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Only {
    /// Mounted in the daemon's view only: it reads something the host does not show.
    Daemon,
    /// Mounted on the host, absent from the daemon's view (unmounted there).
    Host,
}

/// One difference between the views, at a path as on the node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    pub path: PathBuf,
    pub only: Only,
    pub fstype: String,
    pub dev: String,
    pub root: PathBuf,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.only {
            Only::Daemon => "mounted only in the daemon's view",
            Only::Host => "mounted on the host but not in the daemon's view",
        };
        write!(
            f,
            "{} {side} ({} {} {})",
            self.path.display(),
            self.fstype,
            self.dev,
            self.root.display()
        )
    }
}

/// The daemon's mounts below the host root, by path as on the node, without its own binds.
fn view_by_path<'a>(
    own: &'a [Mount],
    hostroot: &Path,
    own_ids: &BTreeSet<u64>,
) -> BTreeMap<PathBuf, Vec<&'a Mount>> {
    let mut by = BTreeMap::<PathBuf, Vec<&Mount>>::new();
    for m in own.iter().filter(|m| !own_ids.contains(&m.id)) {
        if let Some(p) = on_node(&m.point, hostroot) {
            by.entry(p).or_default().push(m);
        }
    }
    by
}

/// The differences between the daemon's table `own` (its binds `own_ids` aside) and one
/// reference table of the host (paths relative to the host's root). Pure.
pub fn compare(
    own: &[Mount],
    hostroot: &Path,
    own_ids: &BTreeSet<u64>,
    reference: &[Mount],
) -> BTreeSet<Difference> {
    let ours = view_by_path(own, hostroot, own_ids);
    let mut theirs = BTreeMap::<&Path, Vec<&Mount>>::new();
    for m in reference {
        theirs.entry(&m.point).or_default().push(m);
    }
    let by_id: BTreeMap<u64, &Mount> = reference.iter().map(|m| (m.id, m)).collect();
    // Where the daemon's own container root is on the host: the runtime mounted /proc, /dev,
    // /sys and the cgroups below it in the container's namespace before entering it, and the
    // hostPath bind of `/` copied them. They cover no host file.
    let container_root: BTreeSet<Key> = own
        .iter()
        .filter(|m| m.point == Path::new("/"))
        .map(Mount::key)
        .collect();
    let own_container: Vec<&Path> = reference
        .iter()
        .filter(|m| m.point != Path::new("/") && container_root.contains(&m.key()))
        .map(|m| m.point.as_path())
        .collect();
    let mut out = BTreeSet::new();
    for (path, mounts) in &ours {
        if own_container
            .iter()
            .any(|r| path.starts_with(r) && path != r)
        {
            continue;
        }
        let keys: BTreeSet<Key> = theirs
            .get(path.as_path())
            .map(|v| v.iter().map(|m| m.key()).collect())
            .unwrap_or_default();
        for m in mounts.iter().filter(|m| !keys.contains(&m.key())) {
            // The host unmounted it below a mount that does not propagate: a stale copy, not
            // an addition. (Nodes share `/`; the kubelet's HostToContainer needs it.)
            if !covering(reference, path).is_some_and(|c| c.shared) {
                continue;
            }
            out.insert(difference(path, Only::Daemon, m));
        }
    }
    for m in reference {
        // Only the topmost mount at a path is what the host shows there.
        let covered = theirs[m.point.as_path()]
            .iter()
            .any(|o| o.parent == m.id && o.id != m.id);
        let propagates =
            by_id.get(&m.parent).is_some_and(|p| p.shared) || m.point == Path::new("/");
        if covered || m.unbindable || !propagates {
            continue;
        }
        let seen = ours
            .get(&m.point)
            .is_some_and(|v| v.iter().any(|o| o.key() == m.key()));
        if !seen {
            out.insert(difference(&m.point, Only::Host, m));
        }
    }
    out
}

fn difference(path: &Path, only: Only, m: &Mount) -> Difference {
    Difference {
        path: path.to_path_buf(),
        only,
        fstype: m.fstype.clone(),
        dev: m.dev.clone(),
        root: m.root.clone(),
    }
}

/// The host's mount that `path` is on: the topmost at the longest mount point above it
/// (`path` itself excluded).
fn covering<'a>(table: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    let parent = path.parent()?;
    let mut best: Option<&Mount> = None;
    for m in table.iter().filter(|m| parent.starts_with(&m.point)) {
        let better = match best {
            None => true,
            Some(b) => {
                let (a, b_len) = (m.point.as_os_str().len(), b.point.as_os_str().len());
                a > b_len || (a == b_len && m.parent == b.id)
            }
        };
        if better {
            best = Some(m);
        }
    }
    best
}

/// Trees where the kubelet and container runtimes mount files on every node (subPath and
/// projected volumes, container state): no host file there is one a scan checks by default.
const RUNTIME_TREES: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/run",
    "/var/lib/kubelet",
    "/var/lib/containers",
    "/var/lib/containerd",
    "/var/lib/rancher",
];

/// Paths (as on the node) where a mount covers something that is not a directory, outside
/// [`RUNTIME_TREES`]: a file-level bind mount. `is_dir` answers for a path as on the node.
pub fn covered_files(
    own: &[Mount],
    hostroot: &Path,
    own_ids: &BTreeSet<u64>,
    is_dir: impl Fn(&Path) -> bool,
) -> Vec<PathBuf> {
    view_by_path(own, hostroot, own_ids)
        .into_keys()
        .filter(|p| !RUNTIME_TREES.iter().any(|t| p.starts_with(t)))
        .filter(|p| !is_dir(p))
        .collect()
}

/// SHA-256 of the daemon's view: each distinct mount below the host root as
/// `path dev root fstype`, sorted.
pub fn digest(own: &[Mount], hostroot: &Path, own_ids: &BTreeSet<u64>) -> String {
    let mut lines = BTreeSet::new();
    for (path, mounts) in view_by_path(own, hostroot, own_ids) {
        for m in mounts {
            let mut line = path.as_os_str().as_bytes().to_vec();
            for part in [
                m.dev.as_bytes(),
                m.root.as_os_str().as_bytes(),
                m.fstype.as_bytes(),
            ] {
                line.push(b' ');
                line.extend_from_slice(part);
            }
            line.push(b'\n');
            lines.insert(line);
        }
    }
    fio_core::hash::sha256_hex(&lines.into_iter().flatten().collect::<Vec<u8>>())
}

/// Processes whose mount table is the host's for the daemon: the ones that resolved its
/// hostPath. A decoy of the same name only adds differences (every reference must agree).
pub const REFERENCE_NAMES: &[&str] = &["kubelet", "crio", "containerd", "k3s-server", "k3s-agent"];

/// The most of a mount table read (a node with thousands of pods has a few MiB).
pub const MAX_TABLE: u64 = 32 << 20;

/// Reads before a difference is believed, and the pause between them.
pub const ATTEMPTS: usize = 3;
const PAUSE: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: mount table larger than {MAX_TABLE} bytes")]
    TooLarge { path: PathBuf },
    #[error(
        "the view of the host cannot be checked: no process named {names} under {proc} has the \
         host root ({dev} {root}) as its root"
    )]
    NoReference {
        names: String,
        proc: PathBuf,
        dev: String,
        root: PathBuf,
    },
    #[error("the view of the host cannot be checked: {hostroot} is not a mount point here")]
    NotMounted { hostroot: PathBuf },
}

/// What one check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// [`digest`] of the daemon's view.
    pub digest: String,
    /// Differences that persisted over [`ATTEMPTS`] reads.
    pub altered: BTreeSet<Difference>,
    pub covered_files: Vec<PathBuf>,
}

impl Observation {
    /// The Errored message when the view is altered: differences named, at most 10.
    pub fn altered_message(&self) -> Option<String> {
        if self.altered.is_empty() {
            return None;
        }
        let shown: Vec<String> = self
            .altered
            .iter()
            .take(10)
            .map(|d| d.to_string())
            .collect();
        let more = self.altered.len().saturating_sub(shown.len());
        let mut message = format!("view of the host altered: {}", shown.join("; "));
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        Some(message)
    }
}

impl Observation {
    /// What a result carries: the digest and at most 20 covered files (escaped, as AIDE
    /// escapes names: control characters, backslash and non-UTF-8 bytes as `\ooo`), then how
    /// many more.
    pub fn host_view(&self) -> fio_api::result::HostView {
        const LISTED: usize = 20;
        let mut covered: Vec<String> = self
            .covered_files
            .iter()
            .take(LISTED)
            .map(|p| escaped(p))
            .collect();
        if self.covered_files.len() > LISTED {
            covered.push(format!("and {} more", self.covered_files.len() - LISTED));
        }
        fio_api::result::HostView {
            digest: self.digest.clone(),
            covered_files: covered,
        }
    }
}

/// `path` printable on one line: control characters and backslashes as `\ooo`, and every
/// byte above 127 too when the name is not UTF-8.
pub fn escaped(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    let utf8 = std::str::from_utf8(bytes).is_ok();
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if b < 0x20 || b == 0x7f || b == b'\\' || (!utf8 && b > 0x7f) {
            out.extend_from_slice(format!("\\{b:03o}").as_bytes());
        } else {
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The daemon's checker: where the host root is and which mounts are its own.
#[derive(Debug, Clone)]
pub struct Checker {
    hostroot: PathBuf,
    own_ids: BTreeSet<u64>,
    /// The tree the daemon sees at the host root (a reference's `/` must be one of these).
    roots: BTreeSet<Key>,
}

fn read_table(path: &Path) -> Result<Vec<Mount>, ViewError> {
    let err = |source| ViewError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut text = Vec::new();
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_TABLE + 1)
        .read_to_end(&mut text)
        .map_err(err)?;
    if text.len() as u64 > MAX_TABLE {
        return Err(ViewError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(parse(&text))
}

const SELF_TABLE: &str = "/proc/self/mountinfo";

impl Checker {
    /// Right after hardening: the mounts now at the `writable` directories are the daemon's
    /// own binds (a later mount there is not).
    pub fn after_hardening(hostroot: &Path, writable: &[PathBuf]) -> Result<Checker, ViewError> {
        let own = read_table(Path::new(SELF_TABLE))?;
        let own_ids = own
            .iter()
            .filter(|m| writable.contains(&m.point))
            .map(|m| m.id)
            .collect();
        let roots: BTreeSet<Key> = own
            .iter()
            .filter(|m| m.point == hostroot)
            .map(Mount::key)
            .collect();
        if roots.is_empty() {
            return Err(ViewError::NotMounted {
                hostroot: hostroot.to_path_buf(),
            });
        }
        Ok(Checker {
            hostroot: hostroot.to_path_buf(),
            own_ids,
            roots,
        })
    }

    /// Compare the views, reading again while they differ (up to [`ATTEMPTS`] times).
    pub fn check(&self) -> Result<Observation, ViewError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (own, altered) = self.differences()?;
            if altered.is_empty() || attempt == ATTEMPTS {
                let hostroot = &self.hostroot;
                let is_dir = |p: &Path| {
                    let at = hostroot.join(p.strip_prefix("/").unwrap_or(p));
                    std::fs::symlink_metadata(at).is_ok_and(|m| m.is_dir())
                };
                return Ok(Observation {
                    digest: digest(&own, hostroot, &self.own_ids),
                    covered_files: covered_files(&own, hostroot, &self.own_ids, is_dir),
                    altered,
                });
            }
            std::thread::sleep(PAUSE);
        }
    }

    /// One read of our table between two reads of the references; a difference counts when
    /// both reference reads show it.
    fn differences(&self) -> Result<(Vec<Mount>, BTreeSet<Difference>), ViewError> {
        let before = self.references()?;
        let own = read_table(Path::new(SELF_TABLE))?;
        let after = self.references()?;
        let mut altered = BTreeSet::new();
        for table in &before {
            altered.extend(compare(&own, &self.hostroot, &self.own_ids, table));
        }
        let mut again = BTreeSet::new();
        for table in &after {
            again.extend(compare(&own, &self.hostroot, &self.own_ids, table));
        }
        Ok((own, altered.intersection(&again).cloned().collect()))
    }

    /// The mount tables of the [`REFERENCE_NAMES`] processes under `<hostroot>/proc` whose root
    /// is the tree the daemon sees at the host root.
    fn references(&self) -> Result<Vec<Vec<Mount>>, ViewError> {
        let roots = &self.roots;
        let proc = self.hostroot.join("proc");
        let entries = std::fs::read_dir(&proc).map_err(|source| ViewError::Read {
            path: proc.clone(),
            source,
        })?;
        let mut tables = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.as_bytes().iter().all(u8::is_ascii_digit) {
                continue;
            }
            // Processes come and go: one that vanished is no reference.
            let Ok(comm) = std::fs::read(entry.path().join("comm")) else {
                continue;
            };
            let comm = String::from_utf8_lossy(&comm);
            if !REFERENCE_NAMES.contains(&comm.trim_end()) {
                continue;
            }
            let table = match read_table(&entry.path().join("mountinfo")) {
                Ok(t) => t,
                Err(ViewError::Read { .. }) => continue,
                Err(e) => return Err(e),
            };
            let is_ours = table
                .iter()
                .any(|m| m.point == Path::new("/") && roots.contains(&m.key()));
            if is_ours {
                tables.push(table);
            }
        }
        if tables.is_empty() {
            let (dev, root) = roots.iter().next().cloned().unwrap_or_default();
            return Err(ViewError::NoReference {
                names: REFERENCE_NAMES.join(", "),
                proc,
                dev,
                root,
            });
        }
        Ok(tables)
    }
}

#[cfg(test)]
mod tests;
