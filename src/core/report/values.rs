//! How AIDE 0.18.3 turns one attribute of one entry into report text (`get_attribute_values`),
//! and the escaping the Debian build (with the CVE-2025-54389 fix) applies to plain and JSON output.

use crate::attr::{Attr, AttrSet};
use crate::entry::{Entry, FileType};
use base64::Engine as _;

/// e2fsprogs' flag letters, in the order AIDE prints them (`lib/e2p/pf.c` as compiled into
/// Debian 12's AIDE: 22 flags).
pub const E2FS_FLAGS: [(u64, char); 22] = [
    (0x0000_0001, 's'), // secure deletion
    (0x0000_0002, 'u'), // undelete
    (0x0000_0008, 'S'), // synchronous updates
    (0x0001_0000, 'D'), // synchronous directory updates
    (0x0000_0010, 'i'), // immutable
    (0x0000_0020, 'a'), // append only
    (0x0000_0040, 'd'), // no dump
    (0x0000_0080, 'A'), // no atime updates
    (0x0000_0004, 'c'), // compressed
    (0x0000_0800, 'E'), // encrypted
    (0x0000_4000, 'j'), // journalled data
    (0x0000_1000, 'I'), // indexed directory
    (0x0000_8000, 't'), // no tail merging
    (0x0002_0000, 'T'), // top of directory hierarchy
    (0x0008_0000, 'e'), // extents
    (0x0080_0000, 'C'), // no copy on write
    (0x0200_0000, 'x'), // DAX
    (0x4000_0000, 'F'), // casefold
    (0x1000_0000, 'N'), // inline data
    (0x2000_0000, 'P'), // project id inheritance
    (0x0010_0000, 'V'), // verity
    (0x0000_0400, 'm'), // don't compress
];

/// AIDE's `get_e2fsattrs_string`: with `flags_only` just the letters of the set flags (used for
/// the `report_ignore_e2fsattrs` option line), else one character per known flag: the letter,
/// `-` when unset, `:` when ignored.
pub fn e2fsattrs_string(flags: u64, flags_only: bool, ignore: u64) -> String {
    let mut s = String::with_capacity(E2FS_FLAGS.len());
    for &(f, c) in E2FS_FLAGS.iter() {
        if !flags_only && f & ignore != 0 {
            s.push(':');
        } else if f & flags != 0 {
            s.push(c);
        } else if !flags_only {
            s.push('-');
        }
    }
    s
}

/// `perm_to_char`: `ls -l` style permission string (setgid without group x is `l`, as in AIDE).
pub fn perm_string(perm: u32) -> String {
    let mut pc = [b'-'; 10];
    pc[0] = match perm & libc::S_IFMT {
        libc::S_IFDIR => b'd',
        libc::S_IFIFO => b'p',
        libc::S_IFLNK => b'l',
        libc::S_IFBLK => b'b',
        libc::S_IFCHR => b'c',
        libc::S_IFSOCK => b's',
        _ => b'-',
    };
    let bits: [(u32, usize, u8); 9] = [
        (0o400, 1, b'r'),
        (0o200, 2, b'w'),
        (0o100, 3, b'x'),
        (0o040, 4, b'r'),
        (0o020, 5, b'w'),
        (0o010, 6, b'x'),
        (0o004, 7, b'r'),
        (0o002, 8, b'w'),
        (0o001, 9, b'x'),
    ];
    for (bit, pos, c) in bits {
        if perm & bit != 0 {
            pc[pos] = c;
        }
    }
    if perm & 0o4000 != 0 {
        pc[3] = if perm & 0o100 != 0 { b's' } else { b'S' };
    }
    if perm & 0o2000 != 0 {
        pc[6] = if perm & 0o010 != 0 { b's' } else { b'l' };
    }
    if perm & 0o1000 != 0 {
        pc[9] = if perm & 0o001 != 0 { b't' } else { b'T' };
    }
    String::from_utf8_lossy(&pc).into_owned()
}

/// The type word of a detail block and of the `File type` attribute (`get_file_type_string`);
/// `None` when the mode has no type bits (the database lines of the last section).
pub fn file_type_word(perm: u32) -> Option<&'static str> {
    if perm & libc::S_IFMT == 0 {
        None
    } else {
        Some(FileType::from_mode(perm).report_word())
    }
}

/// `get_file_type_char_from_perm`.
pub fn file_type_char(perm: u32) -> char {
    if perm & libc::S_IFMT == 0 {
        '?'
    } else {
        FileType::from_mode(perm).letter()
    }
}

pub use crate::timefmt::{format_time_with_offset, local_offset};

#[cfg(test)]
thread_local! {
    /// Tests pin the time zone here instead of depending on `TZ`.
    pub static TEST_UTC_OFFSET: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// AIDE's `get_time_string`: local time with numeric offset, `2026-11-29 00:59:24 +0000`.
pub fn time_string(secs: i64) -> String {
    #[cfg(test)]
    if let Some(off) = TEST_UTC_OFFSET.with(|c| c.get()) {
        return format_time_with_offset(secs, off);
    }
    format_time_with_offset(secs, local_offset(secs))
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Bytes up to (not including) the first NUL: what C sees of a string.
pub(super) fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Characters AIDE prints an xattr value with verbatim (`PRINTABLE_XATTR_VALS`); anything else
/// makes it print the value base64-encoded.
const PRINTABLE_XATTR_VALS: &[u8] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_:;,[]{}<>()!@#$%^&*|\\/?~";

fn xattr_value_printable(v: &[u8]) -> bool {
    // AIDE uses strchr(), which also "finds" the NUL byte: NULs count as printable.
    v.iter()
        .all(|b| *b == 0 || PRINTABLE_XATTR_VALS.contains(b))
}

/// `xattrs2array`: `num=N`, then `[i] key = value` or `[i] key <=> base64`.
pub fn xattr_lines(xattrs: Option<&[(Vec<u8>, Vec<u8>)]>) -> Vec<Vec<u8>> {
    let list = xattrs.unwrap_or(&[]);
    let mut out = Vec::with_capacity(list.len() + 1);
    out.push(format!("num={}", list.len()).into_bytes());
    for (i, (key, val)) in list.iter().enumerate() {
        let mut line = format!("[{}] ", i + 1).into_bytes();
        line.extend_from_slice(c_str(key));
        if xattr_value_printable(val) {
            line.extend_from_slice(b" = ");
            line.extend_from_slice(c_str(val));
        } else {
            line.extend_from_slice(b" <=> ");
            line.extend_from_slice(base64(val).as_bytes());
        }
        out.push(line);
    }
    out
}

/// `acl2array`: one `A: entry` line per line of the access ACL text, then `D: entry` for the
/// default ACL. Only newline-terminated lines are printed, like AIDE.
pub fn acl_lines(acl: Option<&crate::entry::Acl>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some(acl) = acl else { return out };
    for (text, tag) in [(&acl.access, b'A'), (&acl.default, b'D')] {
        let Some(text) = text else { continue };
        let text = c_str(text);
        let mut start = 0;
        for (i, &b) in text.iter().enumerate() {
            if b == b'\n' {
                let mut line = vec![tag, b':', b' '];
                line.extend_from_slice(&text[start..i]);
                out.push(line);
                start = i + 1;
            }
        }
    }
    out
}

/// The hash attributes in AIDE's `hashsums[]` order: the order of detail lines.
pub use crate::attr::HASH_ORDER as REPORT_HASH_ORDER;

/// Every hash attribute AIDE knows (`get_hashes(true)`): the `H` column of summary strings.
pub const ALL_HASHES: AttrSet = crate::attr::HASHES;

/// Field names of the JSON report (`attributes[].field_name`).
pub fn json_name(a: Attr) -> &'static str {
    match a {
        Attr::Filename => "name",
        Attr::Linkname => "link_name",
        Attr::Perm => "perm",
        Attr::Uid => "uid",
        Attr::Gid => "gid",
        Attr::Size => "size",
        Attr::Atime => "access_time",
        Attr::Ctime => "change_time",
        Attr::Mtime => "modify_time",
        Attr::Inode => "inode",
        Attr::Bcount => "block_count",
        Attr::Linkcount => "link_count",
        Attr::SizeGrowing => "growing_size",
        Attr::Ftype => "file_type",
        Attr::Caps => "capabilities",
        other => other
            .info()
            .db_name
            .or(other.info().config_name)
            .unwrap_or("(null)"),
    }
}

/// Attributes the JSON report prints as bare numbers.
pub fn json_is_number(a: Attr) -> bool {
    matches!(
        a,
        Attr::Uid
            | Attr::Gid
            | Attr::Size
            | Attr::SizeGrowing
            | Attr::Inode
            | Attr::Bcount
            | Attr::Linkcount
    )
}

/// Name in the left column of plain detail lines.
pub fn detail_name(a: Attr) -> &'static str {
    a.info().report_name.unwrap_or("")
}

/// `get_attribute_values`: the (unescaped) text lines of attribute `a` of `line`; empty when the
/// entry is absent or does not carry the attribute.
pub fn attribute_values(
    a: Attr,
    line: Option<&Entry>,
    base16: bool,
    ignore_e2fsattrs: u64,
) -> Vec<Vec<u8>> {
    let Some(e) = line else { return Vec::new() };
    if !e.attrs.contains(a) {
        return Vec::new();
    }
    let one = |s: String| vec![s.into_bytes()];
    match a {
        Attr::Acl => acl_lines(e.acl.as_ref()),
        Attr::Xattrs => xattr_lines(e.xattrs.as_deref()),
        Attr::Ftype => one(file_type_word(e.perm).unwrap_or("").to_string()),
        Attr::Linkname => vec![c_str(e.linkname.as_deref().unwrap_or(b"")).to_vec()],
        Attr::Size | Attr::SizeGrowing => one(e.size.to_string()),
        Attr::Perm => one(perm_string(e.perm)),
        Attr::Atime => one(time_string(e.atime)),
        Attr::Mtime => one(time_string(e.mtime)),
        Attr::Ctime => one(time_string(e.ctime)),
        Attr::Bcount => one(e.bcount.to_string()),
        Attr::Uid => one(e.uid.to_string()),
        Attr::Gid => one(e.gid.to_string()),
        Attr::Inode => one(e.inode.to_string()),
        Attr::Linkcount => one(e.lcount.to_string()),
        Attr::Selinux => vec![c_str(e.selinux.as_deref().unwrap_or(b"")).to_vec()],
        Attr::E2fsattrs => one(e2fsattrs_string(e.e2fsattrs, false, ignore_e2fsattrs)),
        Attr::Caps => vec![c_str(e.caps.as_deref().unwrap_or(b"")).to_vec()],
        h if REPORT_HASH_ORDER.contains(&h) => one(digest_string(e.hash(h).unwrap_or(&[]), base16)),
        _ => one("unknown attribute".to_string()),
    }
}

pub fn digest_string(d: &[u8], base16: bool) -> String {
    if base16 {
        crate::hash::hex(d)
    } else {
        base64(d)
    }
}

/// Escaping of the plain report (`stresc`, CVE-2025-54389 fix as shipped by Debian for 0.18.3):
/// bytes 0x00-0x1e and 0x7f, and a backslash followed by three digits, become `\ooo`. Note that
/// 0x1f and bytes >= 0x80 are left alone, exactly as AIDE does. The string ends at a NUL.
pub fn plain_escape(s: &[u8]) -> Vec<u8> {
    let s = c_str(s);
    let mut out = Vec::with_capacity(s.len());
    for (i, &c) in s.iter().enumerate() {
        let backslash_digits =
            c == b'\\' && s.len() > i + 3 && s[i + 1..i + 4].iter().all(u8::is_ascii_digit);
        if c < 0x1f || c == 0x7f || backslash_digits {
            out.extend_from_slice(format!("\\{c:03o}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out
}

/// Escaping of JSON strings as Debian's AIDE 0.18.3 does it: `\n \t \b \f \r \" \\`, other bytes
/// below 0x1f and 0x7f as `\u` followed by the *decimal* value in 4 digits (0x1b -> `\u0027`,
/// a quirk of the backported fix); 0x1f and bytes >= 0x80 verbatim. The string ends at a NUL.
pub fn json_escape(s: &[u8]) -> Vec<u8> {
    let s = c_str(s);
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        match c {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(c);
            }
            c if c < 0x1f || c == 0x7f => out.extend_from_slice(format!("\\u{c:04}").as_bytes()),
            c => out.push(c),
        }
    }
    out
}

/// AIDE's `diff_attributes(a, b)`: the config names of the attributes in exactly one of the
/// sets, in bit order, `+name` when in `b`, `-name` when in `a`; the sign of the first one is
/// left out when `a` is empty (`p+u+g` for a plain list).
pub fn diff_attributes(a: AttrSet, b: AttrSet) -> String {
    let mut s = String::new();
    for info in crate::attr::ATTRS.iter() {
        let Some(name) = info.config_name else {
            continue;
        };
        let (in_a, in_b) = (a.contains(info.attr), b.contains(info.attr));
        if in_a != in_b {
            if !s.is_empty() || !a.is_empty() {
                s.push(if in_b { '+' } else { '-' });
            }
            s.push_str(name);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms() {
        assert_eq!(perm_string(0o100644), "-rw-r--r--");
        assert_eq!(perm_string(0o104755), "-rwsr-xr-x");
        assert_eq!(perm_string(0o42750), "drwxr-s---");
        assert_eq!(perm_string(0o42740), "drwxr-l---");
        assert_eq!(perm_string(0o41777), "drwxrwxrwt");
        assert_eq!(perm_string(0o120777), "lrwxrwxrwx");
        assert_eq!(perm_string(0o10644), "prw-r--r--");
        assert_eq!(perm_string(0o104644), "-rwSr--r--");
    }

    #[test]
    fn times() {
        assert_eq!(
            format_time_with_offset(1_795_913_922, 0),
            "2026-11-29 00:58:42 +0000"
        );
        assert_eq!(
            format_time_with_offset(1_577_934_245, 0),
            "2020-01-02 03:04:05 +0000"
        );
        assert_eq!(
            format_time_with_offset(0, 3600),
            "1970-01-01 01:00:00 +0100"
        );
        assert_eq!(
            format_time_with_offset(0, -(5 * 3600 + 1800)),
            "1969-12-31 18:30:00 -0530"
        );
        assert_eq!(
            format_time_with_offset(951_782_400, 0),
            "2000-02-29 00:00:00 +0000"
        );
    }

    #[test]
    fn e2fs() {
        assert_eq!(
            e2fsattrs_string(524_304, false, 0),
            "----i---------e-------"
        );
        assert_eq!(
            e2fsattrs_string(524_288, false, 0),
            "--------------e-------"
        );
        assert_eq!(e2fsattrs_string(0x80010, true, 0), "ie");
        assert_eq!(
            e2fsattrs_string(0x80010, false, 0x80000),
            "----i---------:-------"
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            plain_escape(b"a\nb\xffc\x1f\x7f"),
            b"a\\012b\xffc\x1f\\177".to_vec()
        );
        assert_eq!(plain_escape(b"x\\123 \\12"), b"x\\134123 \\12".to_vec());
        assert_eq!(plain_escape(b"ab\0cd"), b"ab".to_vec());
        assert_eq!(
            json_escape(b"q\"\\\n\x0b\x1b\x7f\x1f"),
            b"q\\\"\\\\\\n\\u0011\\u0027\\u0127\x1f".to_vec()
        );
    }

    #[test]
    fn diff_attrs() {
        let a = AttrSet::of(&[Attr::Filename, Attr::Perm, Attr::Caps, Attr::Atime]);
        let b = AttrSet::of(&[Attr::Filename, Attr::Perm]);
        assert_eq!(diff_attributes(a, b), "-a-caps");
        assert_eq!(
            diff_attributes(AttrSet::EMPTY, AttrSet::of(&[Attr::Atime, Attr::Sha1])),
            "a+sha1"
        );
        assert_eq!(
            diff_attributes(b, b.with(Attr::Uid).with(Attr::Sha1)),
            "+u+sha1"
        );
    }

    #[test]
    fn xattrs() {
        let x = vec![
            (b"user.comment".to_vec(), b"some comment".to_vec()),
            (b"user.bin".to_vec(), vec![0, 0xff, 0x10]),
        ];
        let l = xattr_lines(Some(&x));
        assert_eq!(l[0], b"num=2");
        assert_eq!(l[1], b"[1] user.comment <=> c29tZSBjb21tZW50");
        assert_eq!(l[2], b"[2] user.bin <=> AP8Q");
        let y = vec![(b"user.x".to_vec(), b"printable_val".to_vec())];
        assert_eq!(xattr_lines(Some(&y))[1], b"[1] user.x = printable_val");
        assert_eq!(xattr_lines(None), vec![b"num=0".to_vec()]);
    }
}
