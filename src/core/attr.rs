//! AIDE's attribute set: the bit numbers, names and predefined groups.
//!
//! Bit numbers are AIDE 0.17/0.18's `enum ATTRIBUTE`; they are stored in every database line (the
//! `attr` column), so they must never be renumbered.

use std::fmt;

/// One attribute, identified by its AIDE bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Attr {
    Filename = 0,
    Linkname = 1,
    Perm = 2,
    Uid = 3,
    Gid = 4,
    Size = 5,
    Atime = 6,
    Ctime = 7,
    Mtime = 8,
    Inode = 9,
    Bcount = 10,
    Linkcount = 11,
    Md5 = 12,
    Sha1 = 13,
    Rmd160 = 14,
    Tiger = 15,
    Crc32 = 16,
    Haval = 17,
    Gost = 18,
    Crc32b = 19,
    Attr = 20,
    Acl = 21,
    Bsize = 22,
    Rdev = 23,
    Dev = 24,
    AllHashsums = 25,
    SizeGrowing = 26,
    CheckInode = 27,
    AllowNewFile = 28,
    AllowRmFile = 29,
    Sha256 = 30,
    Sha512 = 31,
    Selinux = 32,
    Xattrs = 33,
    Whirlpool = 34,
    Ftype = 35,
    E2fsattrs = 36,
    Caps = 37,
    Stribog256 = 38,
    Stribog512 = 39,
    Growing = 40,
    Compressed = 41,
}

/// Static facts about one attribute, as in AIDE's `attributes[]` table.
pub struct AttrInfo {
    pub attr: Attr,
    /// Name in config expressions (`p`, `sha512`, ...).
    pub config_name: Option<&'static str>,
    /// Name in plain-report detail lines (`Perm`, `SHA512`, ...).
    pub report_name: Option<&'static str>,
    /// Column name in `@@db_spec`.
    pub db_name: Option<&'static str>,
    /// Character in the summary string of changed entries.
    pub summary_char: Option<char>,
}

macro_rules! info {
    ($a:ident, $c:expr, $r:expr, $d:expr, $s:expr) => {
        AttrInfo {
            attr: Attr::$a,
            config_name: $c,
            report_name: $r,
            db_name: $d,
            summary_char: $s,
        }
    };
}

/// Indexed by bit number.
pub static ATTRS: [AttrInfo; 42] = [
    info!(Filename, None, None, Some("name"), None),
    info!(Linkname, Some("l"), Some("Lname"), Some("lname"), Some('l')),
    info!(Perm, Some("p"), Some("Perm"), Some("perm"), Some('p')),
    info!(Uid, Some("u"), Some("Uid"), Some("uid"), Some('u')),
    info!(Gid, Some("g"), Some("Gid"), Some("gid"), Some('g')),
    info!(Size, Some("s"), Some("Size"), Some("size"), Some('>')),
    info!(Atime, Some("a"), Some("Atime"), Some("atime"), Some('a')),
    info!(Ctime, Some("c"), Some("Ctime"), Some("ctime"), Some('c')),
    info!(Mtime, Some("m"), Some("Mtime"), Some("mtime"), Some('m')),
    info!(Inode, Some("i"), Some("Inode"), Some("inode"), Some('i')),
    info!(Bcount, Some("b"), Some("Bcount"), Some("bcount"), Some('b')),
    info!(
        Linkcount,
        Some("n"),
        Some("Linkcount"),
        Some("lcount"),
        Some('n')
    ),
    info!(Md5, Some("md5"), Some("MD5"), Some("md5"), None),
    info!(Sha1, Some("sha1"), Some("SHA1"), Some("sha1"), None),
    info!(Rmd160, Some("rmd160"), Some("RMD160"), Some("rmd160"), None),
    info!(Tiger, Some("tiger"), Some("TIGER"), Some("tiger"), None),
    info!(Crc32, Some("crc32"), Some("CRC32"), Some("crc32"), None),
    info!(Haval, Some("haval"), Some("HAVAL"), Some("haval"), None),
    info!(Gost, Some("gost"), Some("GOST"), Some("gost"), None),
    info!(Crc32b, Some("crc32b"), Some("CRC32B"), Some("crc32b"), None),
    info!(Attr, None, None, Some("attr"), None),
    info!(Acl, Some("acl"), Some("ACL"), Some("acl"), Some('A')),
    info!(Bsize, None, None, None, None),
    info!(Rdev, None, None, None, None),
    info!(Dev, None, None, None, None),
    info!(AllHashsums, None, None, None, Some('H')),
    info!(SizeGrowing, Some("S"), Some("Size (>)"), None, None),
    info!(CheckInode, Some("I"), None, None, None),
    info!(AllowNewFile, Some("ANF"), None, None, None),
    info!(AllowRmFile, Some("ARF"), None, None, None),
    info!(Sha256, Some("sha256"), Some("SHA256"), Some("sha256"), None),
    info!(Sha512, Some("sha512"), Some("SHA512"), Some("sha512"), None),
    info!(
        Selinux,
        Some("selinux"),
        Some("SELinux"),
        Some("selinux"),
        Some('S')
    ),
    info!(
        Xattrs,
        Some("xattrs"),
        Some("XAttrs"),
        Some("xattrs"),
        Some('X')
    ),
    info!(
        Whirlpool,
        Some("whirlpool"),
        Some("WHIRLPOOL"),
        Some("whirlpool"),
        None
    ),
    info!(Ftype, Some("ftype"), Some("File type"), None, Some('!')),
    info!(
        E2fsattrs,
        Some("e2fsattrs"),
        Some("E2FSAttrs"),
        Some("e2fsattrs"),
        Some('E')
    ),
    info!(
        Caps,
        Some("caps"),
        Some("Caps"),
        Some("capabilities"),
        Some('C')
    ),
    info!(
        Stribog256,
        Some("stribog256"),
        Some("STRIBOG256"),
        Some("stribog256"),
        None
    ),
    info!(
        Stribog512,
        Some("stribog512"),
        Some("STRIBOG512"),
        Some("stribog512"),
        None
    ),
    info!(Growing, Some("growing"), None, None, None),
    info!(Compressed, Some("compressed"), None, None, None),
];

impl Attr {
    pub fn info(self) -> &'static AttrInfo {
        &ATTRS[self as usize]
    }

    pub fn bit(self) -> u64 {
        1u64 << (self as u8)
    }

    pub fn from_index(i: usize) -> Option<Attr> {
        ATTRS.get(i).map(|a| a.attr)
    }

    pub fn from_config_name(name: &str) -> Option<Attr> {
        ATTRS
            .iter()
            .find(|a| a.config_name == Some(name))
            .map(|a| a.attr)
    }

    pub fn from_db_name(name: &str) -> Option<Attr> {
        // AIDE 0.16 wrote `count` for the link count.
        let name = if name == "count" { "lcount" } else { name };
        ATTRS
            .iter()
            .find(|a| a.db_name == Some(name))
            .map(|a| a.attr)
    }

    /// True for the message-digest attributes.
    pub fn is_hash(self) -> bool {
        HASHES.contains(self)
    }
}

/// A set of attributes, stored as AIDE's 64-bit mask.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AttrSet(pub u64);

impl AttrSet {
    pub const EMPTY: AttrSet = AttrSet(0);

    pub const fn of(attrs: &[Attr]) -> AttrSet {
        let mut bits = 0u64;
        let mut i = 0;
        while i < attrs.len() {
            bits |= 1u64 << (attrs[i] as u8);
            i += 1;
        }
        AttrSet(bits)
    }

    pub fn contains(self, a: Attr) -> bool {
        self.0 & a.bit() != 0
    }

    pub fn insert(&mut self, a: Attr) {
        self.0 |= a.bit();
    }

    pub fn remove(&mut self, a: Attr) {
        self.0 &= !a.bit();
    }

    pub fn with(self, a: Attr) -> AttrSet {
        AttrSet(self.0 | a.bit())
    }

    pub fn without(self, a: Attr) -> AttrSet {
        AttrSet(self.0 & !a.bit())
    }

    pub fn union(self, o: AttrSet) -> AttrSet {
        AttrSet(self.0 | o.0)
    }

    pub fn intersect(self, o: AttrSet) -> AttrSet {
        AttrSet(self.0 & o.0)
    }

    pub fn minus(self, o: AttrSet) -> AttrSet {
        AttrSet(self.0 & !o.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Attr> {
        ATTRS
            .iter()
            .map(|i| i.attr)
            .filter(move |a| self.contains(*a))
    }
}

impl fmt::Debug for AttrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .iter()
            .map(|a| a.info().config_name.or(a.info().db_name).unwrap_or("?"))
            .collect();
        write!(f, "AttrSet({})", names.join("+"))
    }
}

/// Every hash attribute AIDE knows, in its `hashsums[]` order (the order of the `H` group and
/// of report lines). Not all are supported: see [`SUPPORTED_HASHES`].
pub const HASH_ORDER: [Attr; 13] = [
    Attr::Md5,
    Attr::Sha1,
    Attr::Sha256,
    Attr::Sha512,
    Attr::Rmd160,
    Attr::Tiger,
    Attr::Crc32,
    Attr::Crc32b,
    Attr::Haval,
    Attr::Whirlpool,
    Attr::Gost,
    Attr::Stribog256,
    Attr::Stribog512,
];

pub const HASHES: AttrSet = AttrSet::of(&HASH_ORDER);

/// Hashes this scanner can compute: AIDE 0.18's mhash set but HAVAL (no maintained crate);
/// the stribogs need libgcrypt in AIDE too.
pub const SUPPORTED_HASHES: AttrSet =
    AttrSet(HASHES.0 & !AttrSet::of(&[Attr::Haval, Attr::Stribog256, Attr::Stribog512]).0);

/// `H`: every compiled-in hash, as in AIDE (whose `H` also depends on how it was built).
pub const GROUP_H: AttrSet = SUPPORTED_HASHES;

/// `X`: extended attributes of every kind.
pub const GROUP_X: AttrSet = AttrSet::of(&[
    Attr::Acl,
    Attr::Selinux,
    Attr::Xattrs,
    Attr::E2fsattrs,
    Attr::Caps,
]);

/// The predefined groups of AIDE 0.18 (`aide --version` of Debian's build).
pub fn predefined_groups() -> Vec<(&'static str, AttrSet)> {
    use Attr::{
        Acl, Caps, Ctime, E2fsattrs, Ftype, Gid, Growing, Inode, Linkcount, Linkname, Md5, Mtime,
        Perm, Selinux, Size, Uid, Xattrs,
    };
    let r = AttrSet::of(&[
        Linkname, Perm, Uid, Gid, Size, Ctime, Mtime, Inode, Linkcount, Md5, Acl, Selinux, Xattrs,
        Ftype, E2fsattrs, Caps,
    ]);
    let l = AttrSet::of(&[
        Linkname, Perm, Uid, Gid, Inode, Linkcount, Acl, Selinux, Xattrs, Ftype, E2fsattrs, Caps,
    ]);
    let gt = AttrSet::of(&[
        Linkname, Perm, Uid, Gid, Size, Inode, Linkcount, Acl, Selinux, Xattrs, Ftype, E2fsattrs,
        Caps, Growing,
    ]);
    vec![
        ("R", r),
        ("L", l),
        (">", gt),
        ("H", GROUP_H),
        ("X", GROUP_X),
        ("E", AttrSet::EMPTY),
    ]
}

/// Attributes that are written to every database line whatever the rules say.
pub const ALWAYS_IN_DB: AttrSet =
    AttrSet::of(&[Attr::Filename, Attr::Perm, Attr::Inode, Attr::Attr]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_numbers_match_aide() {
        // Decoded from a real AIDE 0.18.3 database line (regular file, Full rule).
        let a = AttrSet(132073390077);
        assert!(a.contains(Attr::Sha512) && a.contains(Attr::Ftype) && a.contains(Attr::E2fsattrs));
        assert!(!a.contains(Attr::Linkname) && !a.contains(Attr::Caps));
        assert_eq!(Attr::from_db_name("capabilities"), Some(Attr::Caps));
        assert_eq!(Attr::from_db_name("count"), Some(Attr::Linkcount));
        assert_eq!(Attr::from_config_name("n"), Some(Attr::Linkcount));
        for (i, info) in ATTRS.iter().enumerate() {
            assert_eq!(info.attr as usize, i);
        }
    }
}
