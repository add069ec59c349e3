//! Writing a file so that readers see the old or the new content, never a part: a temporary
//! file beside the target, fsync'd, renamed over it. Temporary names are unique per process and
//! call, and created exclusively: two daemons on one node (each pid 1 in its container, one per
//! FileIntegrity) never share or truncate each other's temporary file.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name for `target`, in its directory, starting with its file name (so that
/// rules excluding `aide.*` exclude it too): `<name>.tmp-<pid>-<nanoseconds>-<n>`.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!("{name}.tmp-{}-{nanos:x}-{n}", std::process::id()))
}

/// Replace `path` atomically with `data`, with permissions `mode`.
pub fn replace_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let written = f
        .write_all(data)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself must survive a crash.
    sync_parent(path)
}

/// Make the entries of `path`'s directory (renames, links, removals) durable: fsync it.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temporary_names_are_unique_and_replacements_complete() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("aide.log");
        let (a, b) = (temp_path(&target), temp_path(&target));
        assert_ne!(a, b);
        assert!(a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("aide.log.tmp-"));
        assert_eq!(a.parent(), Some(dir.path()));
        // Another writer's temporary file with our old naming is never touched.
        let other = dir
            .path()
            .join(format!("aide.log.tmp-{}", std::process::id()));
        std::fs::write(&other, "theirs").unwrap();
        replace_file(&target, b"one", 0o644).unwrap();
        replace_file(&target, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(std::fs::read(&other).unwrap(), b"theirs");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind");
    }
}
