//! The kernel side of the realtime watcher, and all the `unsafe` it needs: a fanotify group
//! reporting directory handles, entry names and pidfds ([`Group::open`]), filesystem marks
//! ([`Group::mark_filesystem`]), reading events, the handle of a directory
//! (`name_to_handle_at`), whether a pidfd's process still runs, closing pidfds.
//!
//! The event records are parsed by [`parse`], safe code that trusts no length it reads: every
//! event, info record, handle and name is checked against what is left of the buffer and
//! against the kernel's own maxima before it is used; a record that does not fit ends the
//! parse with an error (the watcher then opens a gap). `tests.rs` feeds it arbitrary bytes.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `struct fanotify_event_metadata`: event_len u32, vers u8, reserved u8, metadata_len u16,
/// mask u64, fd i32, pid i32.
pub const METADATA_LEN: usize = 24;
/// `struct fanotify_event_info_header`: info_type u8, pad u8, len u16.
const INFO_HEADER_LEN: usize = 4;
/// The kernel's `MAX_HANDLE_SZ`.
pub const MAX_HANDLE: usize = 128;
/// The kernel's `NAME_MAX`.
const MAX_NAME: usize = 255;
/// The largest event the kernel writes: metadata, a directory record with the largest handle
/// and name, an object record, a pidfd record (with room to spare).
pub const MAX_EVENT: usize = 4096;

/// What the group asks the kernel to report: entries created, deleted, moved (directories
/// included), attributes changed, files closed after writing. A write through a shared mmap
/// or to a file kept open is not reported: scheduled scans still find those.
pub const EVENTS: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_ATTRIB
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_DELETE_SELF
    | libc::FAN_MOVE_SELF
    | libc::FAN_ONDIR;

/// A file handle as the kernel reports it: the filesystem, the handle type, its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    pub fsid: [i32; 2],
    pub kind: i32,
    pub bytes: Vec<u8>,
}

/// One event, as far as the watcher needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub mask: u64,
    /// The writer's pid in the listener's pid namespace (0: not visible from there).
    pub pid: i32,
    /// The directory and the entry name (`FAN_EVENT_INFO_TYPE_DFID_NAME`), or the directory
    /// only (`DFID`: an event on the directory itself).
    pub dir: Option<(Handle, Vec<u8>)>,
    /// The object itself (`FAN_EVENT_INFO_TYPE_FID`).
    pub object: Option<Handle>,
    /// The writer's pidfd (owned by the caller once parsed: close it), or why there is none:
    /// [`libc::FAN_NOPIDFD`] (exited before the event was read) or [`libc::FAN_EPIDFD`].
    pub pidfd: Option<i32>,
}

impl Event {
    pub fn overflowed(&self) -> bool {
        self.mask & libc::FAN_Q_OVERFLOW != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fanotify event record at byte {at}: {what}")]
pub struct ParseError {
    pub at: usize,
    pub what: &'static str,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The events in `buf` (what one `read` returned), in order; the first record that does not
/// parse ends the list with its error. The pidfds of the events returned are the caller's to
/// close; those of an event that did not parse are closed by [`Group::read`].
pub fn parse(buf: &[u8]) -> (Vec<Event>, Option<ParseError>) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let err = |what| ParseError { at, what };
        let rest = &buf[at..];
        let Some(len) = u32_at(rest, 0).map(|l| l as usize) else {
            return (out, Some(err("truncated header")));
        };
        if len < METADATA_LEN || len > rest.len() || len > MAX_EVENT {
            return (out, Some(err("event length out of bounds")));
        }
        let ev = &rest[..len];
        if ev[4] != libc::FANOTIFY_METADATA_VERSION {
            return (out, Some(err("unknown metadata version")));
        }
        let meta_len = u16_at(ev, 6).map_or(0, usize::from);
        if meta_len < METADATA_LEN || meta_len > len {
            return (out, Some(err("metadata length out of bounds")));
        }
        let mut e = Event {
            mask: u64_at(ev, 8).unwrap_or_default(),
            pid: i32_at(ev, 20).unwrap_or_default(),
            ..Event::default()
        };
        let mut i = meta_len;
        while i < len {
            let (Some(kind), Some(rlen)) = (ev.get(i).copied(), u16_at(ev, i + 2)) else {
                return (out, Some(err("truncated info record")));
            };
            let rlen = usize::from(rlen);
            if rlen < INFO_HEADER_LEN || rlen > len - i {
                return (out, Some(err("info record length out of bounds")));
            }
            let rec = &ev[i..i + rlen];
            match kind {
                libc::FAN_EVENT_INFO_TYPE_PIDFD => match i32_at(rec, INFO_HEADER_LEN) {
                    Some(fd) => e.pidfd = Some(fd),
                    None => return (out, Some(err("truncated pidfd record"))),
                },
                libc::FAN_EVENT_INFO_TYPE_FID
                | libc::FAN_EVENT_INFO_TYPE_DFID
                | libc::FAN_EVENT_INFO_TYPE_DFID_NAME => {
                    let Some((handle, name)) = fid_record(rec) else {
                        return (out, Some(err("malformed file handle record")));
                    };
                    match kind {
                        libc::FAN_EVENT_INFO_TYPE_FID => e.object = Some(handle),
                        _ => e.dir = Some((handle, name)),
                    }
                }
                // Records this watcher did not ask for are skipped whole.
                _ => {}
            }
            i += rlen;
        }
        out.push(e);
        at += len;
    }
    (out, None)
}

/// A `fanotify_event_info_fid` record: header, fsid (2 x i32), `struct file_handle`
/// (handle_bytes u32, handle_type i32, bytes), then for DFID_NAME a NUL-terminated name.
fn fid_record(rec: &[u8]) -> Option<(Handle, Vec<u8>)> {
    let fsid = [i32_at(rec, 4)?, i32_at(rec, 8)?];
    let hlen = u32_at(rec, 12)? as usize;
    let kind = i32_at(rec, 16)?;
    if hlen > MAX_HANDLE {
        return None;
    }
    let bytes = rec.get(20..20 + hlen)?.to_vec();
    let tail = &rec[20 + hlen..];
    let name = match tail.iter().position(|&c| c == 0) {
        Some(n) if n <= MAX_NAME => tail[..n].to_vec(),
        Some(_) => return None,
        None if tail.is_empty() => Vec::new(),
        None => return None,
    };
    if name.contains(&b'/') {
        return None;
    }
    Some((Handle { fsid, kind, bytes }, name))
}

/// A fanotify group that reports directory handles and entry names (and pidfds when the
/// kernel can).
pub struct Group {
    fd: OwnedFd,
    /// The kernel reports pidfds (5.15+).
    pub pidfds: bool,
}

impl Group {
    /// Needs CAP_SYS_ADMIN: called before the daemon drops it. Without `FAN_REPORT_PIDFD` on
    /// kernels that lack it (writers then cannot be guarded against pid reuse).
    pub fn open() -> io::Result<Group> {
        let base = libc::FAN_CLASS_NOTIF
            | libc::FAN_CLOEXEC
            | libc::FAN_REPORT_FID
            | libc::FAN_REPORT_DFID_NAME;
        let flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE) as libc::c_uint;
        for (extra, pidfds) in [(libc::FAN_REPORT_PIDFD, true), (0, false)] {
            // SAFETY: plain syscall with integer arguments.
            let fd = unsafe { libc::fanotify_init(base | extra, flags) };
            if fd >= 0 {
                // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                return Ok(Group { fd, pidfds });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) || !pidfds {
                return Err(e);
            }
        }
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// Mark the whole filesystem holding `path` (needs CAP_SYS_ADMIN).
    pub fn mark_filesystem(&self, path: &Path) -> io::Result<()> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        let r = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                EVENTS,
                libc::AT_FDCWD,
                c.as_ptr(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Block until events come; parse them into `events`. The error of a record that did not
    /// parse is returned after the events before it; its pidfd, if any, is lost to the parse
    /// and stays open (the kernel writes what it writes: this does not happen).
    pub fn read(&self, buf: &mut [u8], events: &mut Vec<Event>) -> io::Result<Option<ParseError>> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let (parsed, err) = parse(&buf[..n as usize]);
        events.extend(parsed);
        Ok(err)
    }
}

/// The handle of `path` (not following a final symbolic link), as fanotify reports handles.
pub fn handle_of(path: &Path) -> io::Result<Handle> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // struct file_handle with room for the largest handle, 4-byte aligned.
    let mut raw = [0u32; 2 + MAX_HANDLE / 4];
    raw[0] = MAX_HANDLE as u32;
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `raw` is a `struct file_handle` whose handle_bytes says how much room follows;
    // `c` and `mount_id` are valid for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c.as_ptr(),
            raw.as_mut_ptr(),
            &mut mount_id as *mut libc::c_int,
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (raw[0] as usize).min(MAX_HANDLE);
    let kind = raw[1] as i32;
    let bytes: Vec<u8> = raw[2..]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(len)
        .collect();
    let mut st: libc::statfs = unsafe_zeroed_statfs();
    // SAFETY: `c` is valid, `st` is a writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_fsid is two ints, as fanotify reports it.
    // SAFETY: `__kernel_fsid_t` is `struct { int val[2]; }`, same size and layout as [i32; 2].
    let fsid: [i32; 2] = unsafe { std::mem::transmute_copy(&st.f_fsid) };
    Ok(Handle { fsid, kind, bytes })
}

fn unsafe_zeroed_statfs() -> libc::statfs {
    // SAFETY: statfs is plain old data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Whether the process behind `pidfd` still runs (pidfd_send_signal with signal 0): when it
/// does, what was read of its pid before is its own (its pid cannot have been reused).
pub fn pidfd_alive(pidfd: RawFd) -> bool {
    // SAFETY: signal 0 sends nothing; null info and zero flags are valid.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0
}

/// Close a pidfd the kernel gave with an event.
pub fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: `fd` came with an event and nothing else owns or uses it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}
