//! One file's recorded attributes: a database line, or what the walk measured on disk.

use crate::attr::{Attr, AttrSet};

/// File type, as AIDE distinguishes it (from the `S_IFMT` bits of `perm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
    /// Solaris door / event port: never seen on Linux, kept for the restriction letters.
    Door,
    Port,
    Unknown,
}

impl FileType {
    pub fn from_mode(mode: u32) -> FileType {
        match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::Regular,
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::Unknown,
        }
    }

    /// The letter used in rule restrictions and in the report's summary strings.
    pub fn letter(self) -> char {
        match self {
            FileType::Regular => 'f',
            FileType::Directory => 'd',
            FileType::Symlink => 'l',
            FileType::CharDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
            FileType::Door => 'D',
            FileType::Port => 'P',
            FileType::Unknown => '?',
        }
    }

    pub fn from_letter(c: char) -> Option<FileType> {
        Some(match c {
            'f' => FileType::Regular,
            'd' => FileType::Directory,
            'l' => FileType::Symlink,
            'c' => FileType::CharDevice,
            'b' => FileType::BlockDevice,
            'p' => FileType::Fifo,
            's' => FileType::Socket,
            'D' => FileType::Door,
            'P' => FileType::Port,
            _ => return None,
        })
    }

    /// The word that opens a detail block of the plain report (`File: /etc/passwd`).
    pub fn report_word(self) -> &'static str {
        match self {
            FileType::Regular => "File",
            FileType::Directory => "Directory",
            FileType::Symlink => "Link",
            FileType::CharDevice => "Character device",
            FileType::BlockDevice => "Block device",
            FileType::Fifo => "FIFO",
            FileType::Socket => "Socket",
            FileType::Door => "Door",
            FileType::Port => "Port",
            FileType::Unknown => "Unknown file type",
        }
    }
}

/// POSIX ACL in `acl_to_text` form: one `tag:qualifier:perms\n` line per entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    pub access: Option<Vec<u8>>,
    pub default: Option<Vec<u8>>,
}

/// Extended attributes as (key, value).
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// A recorded entry. Only the fields whose attribute is in `attrs` are meaningful; the others
/// hold their zero value, which is also what AIDE writes for them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Raw path bytes, `root_prefix` already removed, always starting with `/`.
    pub name: Vec<u8>,
    /// AIDE's per-entry attribute mask: the rule's attributes minus those that do not apply.
    pub attrs: AttrSet,
    /// `st_mode`, file type bits included.
    pub perm: u32,
    pub linkname: Option<Vec<u8>>,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub atime: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub inode: u64,
    pub bcount: u64,
    pub lcount: u64,
    /// Raw digests, kept sorted by attribute bit.
    pub hashes: Vec<(Attr, Box<[u8]>)>,
    pub acl: Option<Acl>,
    pub selinux: Option<Vec<u8>>,
    /// Extended attributes as (key, value) in the order the filesystem listed them.
    pub xattrs: Option<Xattrs>,
    pub e2fsattrs: u64,
    /// File capabilities in `cap_to_text` form.
    pub caps: Option<Vec<u8>>,
}

impl Entry {
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.perm)
    }

    pub fn hash(&self, a: Attr) -> Option<&[u8]> {
        self.hashes
            .iter()
            .find(|(h, _)| *h == a)
            .map(|(_, d)| &d[..])
    }

    pub fn set_hash(&mut self, a: Attr, digest: Box<[u8]>) {
        match self
            .hashes
            .binary_search_by_key(&(a as u8), |(h, _)| *h as u8)
        {
            Ok(i) => self.hashes[i].1 = digest,
            Err(i) => self.hashes.insert(i, (a, digest)),
        }
    }
}

/// AIDE's entry order: tree pre-order with siblings sorted by byte value, i.e. paths compared
/// component by component. Comparing with `/` mapped below every other byte gives exactly that,
/// because a component never contains `/` or NUL.
pub fn path_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let key = |c: &u8| if *c == b'/' { 0u8 } else { *c };
    a.iter().map(key).cmp(b.iter().map(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn order_is_preorder_with_sorted_siblings() {
        assert_eq!(path_order(b"/a/b", b"/a.b"), Less);
        assert_eq!(path_order(b"/a", b"/a/b"), Less);
        assert_eq!(path_order(b"/data/#comment", b"/data/0leading"), Less);
        assert_eq!(path_order(b"/x", b"/x"), Equal);
    }
}
