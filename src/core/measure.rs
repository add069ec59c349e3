//! Recording one file: the attributes a rule asks for, read the way AIDE 0.18 reads them, but
//! without changing what is measured (O_NOATIME) and without opening anything but regular files
//! and directories.

use crate::attr::{Attr, AttrSet, HASHES, SUPPORTED_HASHES};
use crate::entry::{Acl, Entry, FileType};
use crate::hash::MultiHasher;
use crate::xattr;
use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// Settings that change how an entry is recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeasureOptions {
    /// `acl_no_symlink_follow`: keep `acl` on symlinks.
    pub acl_on_symlinks: bool,
    pub warn_dead_symlinks: bool,
    /// Tell the kernel it may drop the pages of each file once hashed (the node daemon): a scan
    /// reads every file once per interval, and the page cache it would leave is charged to the
    /// daemon pod's memory cgroup, which then sits at its limit (upstream's 2026 fix).
    pub drop_page_cache: bool,
}

const READ_BLOCK: usize = 1 << 20;

thread_local! {
    static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_BLOCK]);
}

/// Record `path` (the real path on disk) as entry `name`, from its `lstat` result.
pub fn measure(
    path: &[u8],
    name: Vec<u8>,
    st: &Metadata,
    rule: AttrSet,
    opts: &MeasureOptions,
) -> Entry {
    let cpath = match CString::new(path) {
        Ok(c) => c,
        Err(_) => CString::new(
            path.iter()
                .copied()
                .filter(|b| *b != 0)
                .collect::<Vec<u8>>(),
        )
        .unwrap_or_default(),
    };
    let mode = st.mode();
    let ftype = FileType::from_mode(mode);
    let mut attrs = rule.with(Attr::Filename);
    let has = |a: Attr| attrs.contains(a);
    let mut e = Entry {
        name,
        perm: mode,
        inode: st.ino(),
        uid: if has(Attr::Uid) { st.uid() as u64 } else { 0 },
        gid: if has(Attr::Gid) { st.gid() as u64 } else { 0 },
        size: if has(Attr::Size) || has(Attr::SizeGrowing) || has(Attr::Growing) {
            st.size()
        } else {
            0
        },
        lcount: if has(Attr::Linkcount) { st.nlink() } else { 0 },
        mtime: if has(Attr::Mtime) { st.mtime() } else { 0 },
        ctime: if has(Attr::Ctime) { st.ctime() } else { 0 },
        atime: if has(Attr::Atime) { st.atime() } else { 0 },
        bcount: if has(Attr::Bcount) { st.blocks() } else { 0 },
        ..Default::default()
    };

    if ftype == FileType::Symlink {
        if !opts.acl_on_symlinks {
            attrs.remove(Attr::Acl);
        }
        if opts.warn_dead_symlinks && std::fs::metadata(std::ffi::OsStr::from_bytes(path)).is_err()
        {
            tracing::warn!("Dead symlink detected at {}", show(path));
        }
        match std::fs::read_link(std::ffi::OsStr::from_bytes(path)) {
            Ok(t) => e.linkname = Some(t.into_os_string().into_vec()),
            Err(err) => {
                tracing::warn!("readlink() failed for '{}': {err}", show(path));
                attrs.remove(Attr::Linkname);
            }
        }
    } else {
        attrs.remove(Attr::Linkname);
    }

    // Only regular files and directories are ever opened (FIFOs would block, devices could
    // have side effects); the open file then serves every xattr call without path lookups.
    let want_flags = attrs.contains(Attr::E2fsattrs);
    let want_hash = !attrs.intersect(HASHES).is_empty() && ftype == FileType::Regular;
    let mut file = None;
    if matches!(ftype, FileType::Regular | FileType::Directory) {
        match open_noatime(path) {
            Ok(f) => file = Some(f),
            Err(err) if want_hash => tracing::warn!(
                "hash calculation: open() failed for {}: {err} (hashsums could not be calculated)",
                show(path)
            ),
            Err(_) => {}
        }
    }
    let fd = file.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let (follow, nofollow) = match fd {
        Some(fd) => (xattr::Target::Fd(fd), xattr::Target::Fd(fd)),
        None => (
            xattr::Target::Follow(&cpath),
            xattr::Target::NoFollow(&cpath),
        ),
    };

    // One listxattr tells which of the xattr-backed attributes exist at all, which saves a
    // getxattr per absent one (nearly always: no ACL, no SELinux label, no capabilities).
    let want_x = AttrSet::of(&[Attr::Acl, Attr::Xattrs, Attr::Selinux, Attr::Caps]);
    let names = if attrs.intersect(want_x).is_empty() {
        None
    } else {
        match xattr::list(nofollow) {
            Ok(n) => Some(n),
            Err(err) => {
                match err.raw_os_error() {
                    Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {}
                    _ => tracing::warn!("listxattrs failed for {}:{err}", show(path)),
                }
                if attrs.contains(Attr::Xattrs)
                    && matches!(
                        err.raw_os_error(),
                        Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
                    )
                {
                    attrs.remove(Attr::Xattrs);
                }
                None
            }
        }
    };
    // Links list their own xattrs but AIDE reads ACLs and caps through them: no shortcut there.
    let listed = |n: &[u8]| {
        ftype == FileType::Symlink || names.as_ref().is_none_or(|v| v.iter().any(|x| x == n))
    };

    if attrs.contains(Attr::Acl) {
        let present = (
            listed(b"system.posix_acl_access"),
            listed(b"system.posix_acl_default"),
        );
        read_acl(follow, path, mode, ftype, present, &mut e, &mut attrs);
    }
    if attrs.contains(Attr::Xattrs) {
        if let Some(names) = &names {
            read_xattrs(names, follow, path, &mut e);
        }
    }
    if attrs.contains(Attr::Selinux) && !listed(b"security.selinux") {
        attrs.remove(Attr::Selinux);
    }
    if attrs.contains(Attr::Selinux) {
        match xattr::get(nofollow, c"security.selinux") {
            Ok(Some(mut v)) => {
                while v.last() == Some(&0) {
                    v.pop();
                }
                e.selinux = Some(v);
            }
            Ok(None) => attrs.remove(Attr::Selinux),
            Err(err) => {
                if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
                    tracing::warn!("lgetfilecon_raw failed for {}: {err}", show(path));
                }
                attrs.remove(Attr::Selinux);
            }
        }
    }
    if attrs.contains(Attr::Caps) && !listed(b"security.capability") {
        attrs.remove(Attr::Caps);
    }
    if attrs.contains(Attr::Caps) {
        match xattr::get(follow, c"security.capability") {
            Ok(Some(v)) => match xattr::caps_text(&v) {
                Some(t) => e.caps = Some(t),
                None => attrs.remove(Attr::Caps),
            },
            _ => attrs.remove(Attr::Caps),
        }
    }

    if want_flags {
        match file.as_ref().and_then(get_flags) {
            Some(f) => e.e2fsattrs = f,
            None => attrs.remove(Attr::E2fsattrs),
        }
    }
    let mut hashed = false;
    if want_hash {
        if let Some(f) = file.as_mut() {
            if let Some(h) = hash_file(f, path, st, attrs) {
                e.hashes = h;
                hashed = true;
            }
            if opts.drop_page_cache {
                use std::os::fd::AsRawFd;
                // Advice only: a failure changes nothing that is recorded.
                // SAFETY: the fd is open for the duration of the call.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        }
    }
    if !hashed {
        attrs = attrs.minus(HASHES);
    }
    e.attrs = attrs;
    e
}

fn open_noatime(path: &[u8]) -> std::io::Result<File> {
    let p = std::ffi::OsStr::from_bytes(path);
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NOATIME)
        .open(p)
    {
        // O_NOATIME is only allowed to the owner or with CAP_FOWNER.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(p),
        r => r,
    }
}

fn get_flags(f: &File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut flags: libc::c_int = 0;
    // FS_IOC_GETFLAGS; the kernel writes an int whatever the ioctl number says.
    // The request is an unsigned long for glibc and an int for musl (`libc::Ioctl`): the same
    // 32 bits either way.
    const FS_IOC_GETFLAGS: libc::Ioctl = 0x8008_6601_u32 as libc::Ioctl;
    // SAFETY: the fd is open; the kernel writes one int into `flags`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) };
    (r == 0).then_some(flags as u32 as u64)
}

/// Hash a regular file that is already open. None (and a warning) when the file is not the one
/// that was `lstat`ed or changed size while being read: AIDE then records no hash.
fn hash_file(
    f: &mut File,
    path: &[u8],
    st: &Metadata,
    attrs: AttrSet,
) -> Option<Vec<(Attr, Box<[u8]>)>> {
    let now = match f.metadata() {
        Ok(m) => m,
        Err(err) => {
            tracing::warn!("hash calculation: fstat() failed for '{}': {err} (hashsums could not be calculated)", show(path));
            return None;
        }
    };
    if now.ino() != st.ino()
        || now.dev() != st.dev()
        || now.mode() != st.mode()
        || now.nlink() != st.nlink()
        || now.size() != st.size()
        || now.mtime() != st.mtime()
        || now.ctime() != st.ctime()
        || now.uid() != st.uid()
        || now.gid() != st.gid()
    {
        tracing::warn!(
            "hash calculation: '{}' has been changed (hash could not be calculated)",
            show(path)
        );
        return None;
    }
    let mut h = MultiHasher::new(attrs.intersect(SUPPORTED_HASHES));
    let mut total: u64 = 0;
    let res = BUF.with(|b| {
        let mut buf = b.borrow_mut();
        loop {
            match f.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    total += n as u64;
                    h.update(&buf[..n]);
                    // A short read that reaches the lstat size is end of file: skip the read
                    // that would return 0 (one syscall per small file). A file that grew
                    // still fills the buffer or overshoots the size, and is caught below.
                    if n < buf.len() && total == st.size() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    });
    if let Err(err) = res {
        tracing::warn!(
            "hash calculation: read failed for '{}': {err} (hashsums could not be calculated)",
            show(path)
        );
        return None;
    }
    if total != st.size() {
        tracing::warn!(
            "hash calculation: number of bytes read ({total}) mismatches stat size ({}) for '{}' (hashsums could not be calculated)",
            st.size(),
            show(path)
        );
        return None;
    }
    Some(h.finish())
}

/// `present`: whether the access and default ACL xattrs exist (from listxattr).
fn read_acl(
    t: xattr::Target,
    path: &[u8],
    mode: u32,
    ftype: FileType,
    present: (bool, bool),
    e: &mut Entry,
    attrs: &mut AttrSet,
) {
    let (has_access, has_default) = present;
    let got = if has_access {
        xattr::get(t, c"system.posix_acl_access")
    } else {
        Ok(None)
    };
    let access = match got {
        Ok(Some(v)) => xattr::acl_text(&v),
        Ok(None) => Some(xattr::minimal_acl_text(mode)),
        Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            attrs.remove(Attr::Acl);
            return;
        }
        Err(err) => {
            tracing::warn!(
                "tried to read access ACL on {} but failed with: {err}",
                show(path)
            );
            None
        }
    };
    // Only directories have a default ACL; an empty one is recorded as absent.
    let default = if ftype == FileType::Directory && has_default {
        match xattr::get(t, c"system.posix_acl_default") {
            Ok(Some(v)) => xattr::acl_text(&v).filter(|t| !t.is_empty()),
            _ => None,
        }
    } else {
        None
    };
    e.acl = Some(Acl {
        access: access.filter(|t| !t.is_empty()),
        default,
    });
}

/// Names are listed without following links, values read following them, as AIDE does.
fn read_xattrs(names: &[Vec<u8>], get: xattr::Target, path: &[u8], e: &mut Entry) {
    let mut out = Vec::new();
    for n in names.iter().cloned() {
        // AIDE keeps only these namespaces (so not system.posix_acl_*).
        if !(n.starts_with(b"user.") || n.starts_with(b"security.") || n.starts_with(b"trusted.")) {
            continue;
        }
        let Ok(cn) = CString::new(n.clone()) else {
            continue;
        };
        match xattr::get(get, &cn) {
            Ok(Some(v)) => out.push((n, v)),
            Ok(None) => {}
            Err(err) => tracing::warn!("getxattr failed for {}:{err}", show(path)),
        }
    }
    if !out.is_empty() {
        e.xattrs = Some(out);
    }
}

/// A path for messages: lossy, control characters escaped.
pub fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).escape_debug().to_string()
}
