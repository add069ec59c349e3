//! Extended attributes, POSIX ACLs and file capabilities, read straight from the kernel's xattr
//! interface (no libacl/libcap), rendered as `acl_to_text` and `cap_to_text` render them.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::sync::Mutex;

/// What an xattr call reads from: an open file (no path lookup: the cheap way for the regular
/// files and directories a scan opens anyway), or a path, followed (`getxattr`, as AIDE's
/// `getxattr`/`acl_get_file`/`cap_get_file`) or not (`lgetxattr`).
#[derive(Clone, Copy)]
pub enum Target<'a> {
    Fd(std::os::fd::RawFd),
    Follow(&'a CStr),
    NoFollow(&'a CStr),
}

/// One extended attribute; `Ok(None)` when it does not exist.
pub fn get(t: Target, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: paths and name are NUL-terminated, the fd is open, buf is valid for len bytes.
        let n = unsafe {
            match t {
                Target::Fd(fd) => libc::fgetxattr(fd, name.as_ptr(), ptr, len),
                Target::Follow(p) => libc::getxattr(p.as_ptr(), name.as_ptr(), ptr, len),
                Target::NoFollow(p) => libc::lgetxattr(p.as_ptr(), name.as_ptr(), ptr, len),
            }
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENODATA) => return Ok(None),
            _ => return Err(err),
        }
    }
}

/// The names of a file's extended attributes (`llistxattr` for paths: links are not followed).
pub fn list(t: Target) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    loop {
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: as in `get`.
        let n = unsafe {
            match t {
                Target::Fd(fd) => libc::flistxattr(fd, ptr, len),
                Target::Follow(p) | Target::NoFollow(p) => libc::llistxattr(p.as_ptr(), ptr, len),
            }
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_vec())
                .collect());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) {
            buf.resize(buf.len() * 4, 0);
        } else {
            return Err(err);
        }
    }
}

const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// The text of a `system.posix_acl_*` xattr value, as `acl_to_text(acl, NULL)` writes it.
/// Returns None for an unparsable value, and an empty string for an ACL with no entries.
pub fn acl_text(value: &[u8]) -> Option<Vec<u8>> {
    if value.len() < 4
        || u32::from_le_bytes(value[0..4].try_into().ok()?) != 2
        || !(value.len() - 4).is_multiple_of(8)
    {
        return None;
    }
    let mut entries: Vec<(u16, u16, u32)> = value[4..]
        .chunks_exact(8)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]),
                u16::from_le_bytes([c[2], c[3]]),
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    // libacl sorts by tag, then qualifier; the kernel already stores them so, but be sure.
    entries.sort_by_key(|(t, _, id)| (*t, *id));
    let mask = entries
        .iter()
        .find(|(t, _, _)| *t == ACL_MASK)
        .map(|(_, p, _)| *p);
    let mut out = Vec::new();
    for (tag, perm, id) in entries {
        let (kind, qual) = match tag {
            ACL_USER_OBJ => ("user", String::new()),
            ACL_USER => ("user", user_name(id)),
            ACL_GROUP_OBJ => ("group", String::new()),
            ACL_GROUP => ("group", group_name(id)),
            ACL_MASK => ("mask", String::new()),
            ACL_OTHER => ("other", String::new()),
            _ => return None,
        };
        out.extend_from_slice(format!("{kind}:{qual}:{}", perms(perm as u32)).as_bytes());
        // libacl notes the rights the mask takes away from the entries it governs.
        if let Some(m) = mask
            .filter(|m| matches!(tag, ACL_USER | ACL_GROUP_OBJ | ACL_GROUP) && perm & !m & 7 != 0)
        {
            out.extend_from_slice(format!("\t#effective:{}", perms((perm & m) as u32)).as_bytes());
        }
        out.push(b'\n');
    }
    Some(out)
}

/// The access ACL a file without the xattr has: the one its mode bits give.
pub fn minimal_acl_text(mode: u32) -> Vec<u8> {
    format!(
        "user::{}\ngroup::{}\nother::{}\n",
        perms(mode >> 6),
        perms(mode >> 3),
        perms(mode)
    )
    .into_bytes()
}

fn perms(p: u32) -> String {
    let mut s = String::with_capacity(3);
    s.push(if p & 4 != 0 { 'r' } else { '-' });
    s.push(if p & 2 != 0 { 'w' } else { '-' });
    s.push(if p & 1 != 0 { 'x' } else { '-' });
    s
}

static NAMES: Mutex<Option<HashMap<(bool, u32), String>>> = Mutex::new(None);

fn user_name(uid: u32) -> String {
    cached_name(false, uid)
}

fn group_name(gid: u32) -> String {
    cached_name(true, gid)
}

/// Name lookups go through NSS like libacl's; cached because a tree repeats the same few ids.
fn cached_name(group: bool, id: u32) -> String {
    let mut guard = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    map.entry((group, id))
        .or_insert_with(|| lookup_name(group, id).unwrap_or_else(|| id.to_string()))
        .clone()
}

fn lookup_name(group: bool, id: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: the *_r functions only write into the structs and buffer we pass, and the
    // returned name points into `buf`, which outlives its use here.
    unsafe {
        if group {
            let mut grp: libc::group = std::mem::zeroed();
            let mut res: *mut libc::group = std::ptr::null_mut();
            if libc::getgrgid_r(id, &mut grp, buf.as_mut_ptr(), buf.len(), &mut res) != 0
                || res.is_null()
            {
                return None;
            }
            Some(CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned())
        } else {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut res: *mut libc::passwd = std::mem::zeroed();
            if libc::getpwuid_r(id, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut res) != 0
                || res.is_null()
            {
                return None;
            }
            Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
        }
    }
}

const CAP_NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

const EFF: u8 = 1;
const INH: u8 = 2;
const PER: u8 = 4;

/// `cap_to_text` of a `security.capability` value (vfs_cap_data, revisions 1 to 3).
pub fn caps_text(value: &[u8]) -> Option<Vec<u8>> {
    let word = |i: usize| {
        value
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let magic = word(0)?;
    let words = match magic & 0xff00_0000 {
        0x0100_0000 => 1,
        0x0200_0000 | 0x0300_0000 => 2,
        _ => return None,
    };
    let effective = magic & 1 != 0;
    let (mut per, mut inh) = (0u64, 0u64);
    for w in 0..words {
        per |= (word(1 + 2 * w)? as u64) << (32 * w);
        inh |= (word(2 + 2 * w)? as u64) << (32 * w);
    }
    let flags = |n: u32| -> u8 {
        let p = (per >> n) & 1 != 0;
        let i = (inh >> n) & 1 != 0;
        let mut f = 0;
        if p {
            f |= PER;
        }
        if i {
            f |= INH;
        }
        if effective && (p || i) {
            f |= EFF;
        }
        f
    };
    let max = (64 - (per | inh).leading_zeros()).max(CAP_NAMES.len() as u32);
    let mut histo = [0usize; 8];
    for n in 0..max {
        histo[flags(n) as usize] += 1;
    }
    // The most common combination is written first as "=flags"; ties go to the lower value.
    let mut m = 7usize;
    for t in (0..7).rev() {
        if histo[t] >= histo[m] {
            m = t;
        }
    }
    let fl = |f: usize| {
        let mut s = String::new();
        if f as u8 & EFF != 0 {
            s.push('e');
        }
        if f as u8 & INH != 0 {
            s.push('i');
        }
        if f as u8 & PER != 0 {
            s.push('p');
        }
        s
    };
    let mut out = if m == 0 {
        String::new()
    } else {
        format!("={}", fl(m))
    };
    for t in (1..8).rev().chain(std::iter::once(0)) {
        if t == m || histo[t] == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        let names: Vec<String> = (0..max)
            .filter(|n| flags(*n) as usize == t)
            .map(|n| {
                CAP_NAMES
                    .get(n as usize)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| n.to_string())
            })
            .collect();
        out.push_str(&names.join(","));
        let add = t & !m;
        let del = m & !t;
        if add != 0 {
            out.push(if m == 0 { '=' } else { '+' });
            out.push_str(&fl(add));
        }
        if del != 0 {
            out.push('-');
            out.push_str(&fl(del));
        }
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `system.posix_acl_*` value from (tag, perm, id) entries.
    fn acl_value(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (t, p, id) in entries {
            v.extend_from_slice(&t.to_le_bytes());
            v.extend_from_slice(&p.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn acl_text_like_libacl() {
        const X: u32 = u32::MAX;
        let v = acl_value(&[(1, 6, X), (2, 4, 0), (4, 4, X), (0x10, 4, X), (0x20, 4, X)]);
        let t = String::from_utf8(acl_text(&v).unwrap()).unwrap();
        assert_eq!(
            t,
            "user::rw-\nuser:root:r--\ngroup::r--\nmask::r--\nother::r--\n"
        );
        assert_eq!(
            minimal_acl_text(0o644),
            b"user::rw-\ngroup::r--\nother::r--\n"
        );
        // A mask narrower than an entry: libacl appends the effective rights.
        let v = acl_value(&[(1, 6, X), (2, 5, 0), (4, 5, X), (0x10, 4, X), (0x20, 4, X)]);
        let t = String::from_utf8(acl_text(&v).unwrap()).unwrap();
        assert_eq!(
            t,
            "user::rw-\nuser:root:r-x\t#effective:r--\ngroup::r-x\t#effective:r--\nmask::r--\nother::r--\n"
        );
    }

    #[test]
    fn caps_text_like_libcap() {
        // cap_net_raw+ep, revision 2, as setcap writes it.
        let mut v = (0x0200_0000u32 | 1).to_le_bytes().to_vec();
        for w in [1u32 << 13, 0, 0, 0] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(caps_text(&v).unwrap(), b"cap_net_raw=ep");
    }
}
