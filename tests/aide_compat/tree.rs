//! The realistic test tree (every file type, tricky names, ACLs, xattrs, a large file) and the
//! mutations both tools must report alike.

#![allow(dead_code)] // each test uses a part

use super::*;

/// `root` joined with a relative name given as raw bytes.
pub fn p(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// Absolute path bytes of `root/rel` (the form used in reports and databases).
pub fn abs(root: &Path, rel: &[u8]) -> Vec<u8> {
    p(root, rel).as_os_str().as_bytes().to_vec()
}

/// Run an external helper (setfacl, setfattr, setcap, ...), panicking with a clear message.
pub fn tool_cmd(prog: &str, args: &[&OsStr]) {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{prog}` ({e}); install it (Debian: apt-get install acl attr libcap2-bin \
             e2fsprogs)"
        )
    });
    if !out.status.success() {
        let a: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        panic!(
            "`{prog} {}` failed: {}{}",
            a.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Like [`tool_cmd`] but returns false instead of panicking when the command fails
/// (used for `chattr`, which depends on the file system).
pub fn try_tool_cmd(prog: &str, args: &[&OsStr]) -> bool {
    match Command::new(prog).args(args).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "warning: `{prog}` failed ({}); continuing without it",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            panic!("cannot run `{prog}` ({e}); install it (Debian: apt-get install e2fsprogs)")
        }
    }
}

pub fn setfacl(args: &[&str], path: &Path) {
    let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    a.push(path.as_os_str());
    tool_cmd("setfacl", &a);
}

pub fn setfattr_set(path: &Path, name: &str, value: &str) {
    tool_cmd(
        "setfattr",
        &[
            OsStr::new("-n"),
            OsStr::new(name),
            OsStr::new("-v"),
            OsStr::new(value),
            path.as_os_str(),
        ],
    );
}

pub fn setfattr_remove(path: &Path, name: &str) {
    tool_cmd(
        "setfattr",
        &[OsStr::new("-x"), OsStr::new(name), path.as_os_str()],
    );
}

fn cstr(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

pub fn mknod(path: &Path, kind: libc::mode_t, perm: libc::mode_t, major: u32, minor: u32) {
    let c = cstr(path);
    // SAFETY: valid NUL-terminated path; mknod has no memory-safety preconditions.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | perm, libc::makedev(major, minor)) };
    if r != 0 {
        panic!(
            "mknod {} failed: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
}

pub fn mkfifo(path: &Path) {
    mknod(path, libc::S_IFIFO, 0o644, 0, 0);
}

pub fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) {
    std::os::unix::fs::lchown(path, uid, gid)
        .unwrap_or_else(|e| panic!("chown {} failed: {e}", path.display()));
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {} failed: {e}", path.display()));
}

/// A UNIX socket file: bind a listener and drop it (the socket inode stays). If the path is
/// too long for `sockaddr_un`, create the socket inode with mknod(S_IFSOCK) instead.
pub fn make_socket(path: &Path) {
    if path.as_os_str().len() < 100 {
        let l = std::os::unix::net::UnixListener::bind(path)
            .unwrap_or_else(|e| panic!("bind {} failed: {e}", path.display()));
        drop(l);
    } else {
        mknod(path, libc::S_IFSOCK, 0o755, 0, 0);
    }
}

fn write_file(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {} failed: {e}", path.display()));
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Non-UTF-8 / control-character names inside `names/` (relative to the tree root).
pub const TRICKY_NAMES: &[&[u8]] = &[
    b"names/new\nline",
    b"names/bad\xff\xfename",
    b"names/utf8-\xc3\xa9t\xc3\xa9",
    b"names/tab\tx",
    b"names/back\\slash",
    b"names/back\\012notnl",
    b"names/esc\x1bx",
    b"names/percent%41",
    b"names/percent%",
    b"names/trailing space ",
    b"names/0zero",
    b"names/plus+eq=,comma;semi",
    b"names/[brackets]{braces}|pipe^~`@:'\"<>",
    b"names/dir\nnl/inner",
];

/// Build the realistic test tree under `root` (which must exist and be empty).
///
/// Covers: regular, empty, large (> 64 MiB, sparse with non-zero data at block boundaries)
/// files; directories (setgid, sticky, default ACL); symlinks (relative, absolute, dangling,
/// target starting with `0`, target with spaces); hard links; FIFO; UNIX socket; char and block
/// devices; setuid/setgid/sticky; POSIX access + default ACLs; user xattrs (text, binary, key
/// with a space, on a directory, on a non-UTF-8 name); file capabilities; an e2fs flag
/// (`chattr +d`, best effort); names with spaces, `#`, `%`, newline, tab, backslash, ESC,
/// leading `0`, non-UTF-8 bytes, a 255-byte name, 200 files in one directory; files owned by
/// uid/gid 65534.
pub fn build_tree(root: &Path) {
    let q = |rel: &[u8]| p(root, rel);
    for d in [
        &b"etc"[..],
        b"bin",
        b"data",
        b"data/sub",
        b"data/many",
        b"dev",
        b"tmp",
        b"gone",
        b"gone/deeper",
        b"dir with space",
        b"names",
        b"names/dir\nnl",
        b"owned",
    ] {
        fs::create_dir(q(d)).unwrap_or_else(|e| panic!("mkdir {:?}: {e}", q(d)));
        chmod(&q(d), 0o755);
    }

    // etc/
    write_file(&q(b"etc/hello.conf"), b"hello world\n");
    setfattr_set(&q(b"etc/hello.conf"), "user.comment", "some comment");
    setfattr_set(&q(b"etc/hello.conf"), "user.bin", "0x00ff10");
    setfacl(&["-m", "u:nobody:r"], &q(b"etc/hello.conf"));
    write_file(&q(b"etc/empty"), b"");
    write_file(&q(b"etc/0leading"), b"zero");
    write_file(&q(b"etc/tricky-xattr"), b"tricky xattr key\n");
    setfattr_set(
        &q(b"etc/tricky-xattr"),
        "user.key with space%#",
        "value one",
    );
    write_file(&q(b"etc/acl-existing"), b"has an extended ACL\n");
    setfacl(&["-m", "u:nobody:rw,g:nogroup:r"], &q(b"etc/acl-existing"));
    write_file(&q(b"etc/to-dir"), b"becomes a directory\n");
    write_file(&q(b"etc/to-fifo"), b"becomes a fifo\n");
    write_file(&q(b"etc/unchanged.conf"), b"never touched\n");

    // bin/
    write_file(&q(b"bin/suidtool"), b"#!/bin/sh\necho suid\n");
    chmod(&q(b"bin/suidtool"), 0o4755);
    write_file(&q(b"bin/sgidtool"), b"#!/bin/sh\necho sgid\n");
    chmod(&q(b"bin/sgidtool"), 0o2755);
    write_file(&q(b"bin/captool"), b"#!/bin/sh\necho caps\n");
    chmod(&q(b"bin/captool"), 0o755);
    tool_cmd(
        "setcap",
        &[OsStr::new("cap_net_raw+ep"), q(b"bin/captool").as_os_str()],
    );
    symlink("../etc/hello.conf", q(b"bin/link-rel")).unwrap();
    symlink(q(b"etc/hello.conf"), q(b"bin/link-abs")).unwrap();
    symlink("/nonexistent/target", q(b"bin/dangling")).unwrap();
    symlink("0leading", q(b"bin/link-0")).unwrap();
    symlink("../dir with space/file#hash%pct", q(b"bin/link-space")).unwrap();
    symlink(
        OsStr::from_bytes(b"../names/bad\xff\xfename"),
        q(b"bin/link-nonutf8"),
    )
    .unwrap();

    // data/
    setfacl(&["-d", "-m", "u:nobody:rx"], &q(b"data"));
    // Files created below inherit the default ACL (so their access ACL is extended).
    write_file(
        &q(b"data/random.bin"),
        &pseudo_random(100_000, 0x9e37_79b9_7f4a_7c15),
    );
    write_file(&q(b"data/#comment"), b"y");
    write_file(&q(b"data/acl-add"), b"gets an ACL later\n");
    setfacl(&["-b"], &q(b"data/acl-add"));
    chmod(&q(b"data/sub"), 0o2750);
    write_file(&q(b"data/sub/a"), b"a");
    fs::hard_link(q(b"data/sub/a"), q(b"data/hardlink-a")).unwrap();
    mkfifo(&q(b"data/fifo"));
    make_socket(&q(b"data/sock"));
    write_file(&q(b"data/nodump"), b"e2fs flag d\n");
    try_tool_cmd("chattr", &[OsStr::new("+d"), q(b"data/nodump").as_os_str()]);
    for i in 0..200 {
        write_file(
            &q(format!("data/many/f{i:04}").as_bytes()),
            format!("file {i}\n").as_bytes(),
        );
    }
    {
        // Large sparse file with real data at the start, across the 16 MiB read-block
        // boundary and at the end.
        let mut f = fs::File::create(q(b"data/big.bin")).unwrap();
        f.set_len(BIG_SIZE).unwrap();
        f.write_all(&pseudo_random(4096, 1)).unwrap();
        f.seek(SeekFrom::Start(16 * 1024 * 1024 - 100)).unwrap();
        f.write_all(&pseudo_random(200, 2)).unwrap();
        f.seek(SeekFrom::Start(BIG_SIZE - 50)).unwrap();
        f.write_all(&pseudo_random(50, 3)).unwrap();
    }

    // dev/
    mknod(&q(b"dev/null-like"), libc::S_IFCHR, 0o666, 1, 3);
    mknod(&q(b"dev/loop-like"), libc::S_IFBLK, 0o660, 7, 0);

    // tmp/ (sticky), gone/ (removed later)
    chmod(&q(b"tmp"), 0o1777);
    write_file(&q(b"tmp/scratch"), b"scratch\n");
    write_file(&q(b"gone/x"), b"x\n");
    write_file(&q(b"gone/deeper/y"), b"y\n");

    // names
    write_file(&q(b"dir with space/file#hash%pct"), b"x");
    for n in TRICKY_NAMES {
        write_file(&q(n), n);
    }
    let long = format!("names/{}", "L".repeat(255));
    write_file(&q(long.as_bytes()), b"long name\n");
    setfattr_set(&q(b"names"), "user.on-dir", "directory xattr");
    setfattr_set(&q(b"names/bad\xff\xfename"), "user.x", "1");

    // ownership
    write_file(&q(b"owned/nobody"), b"owned by 65534\n");
    chown(&q(b"owned/nobody"), Some(65534), Some(65534));
    write_file(&q(b"owned/group-only"), b"group 65534\n");
    chown(&q(b"owned/group-only"), None, Some(65534));
    symlink("nobody", q(b"owned/link-owned")).unwrap();
    chown(&q(b"owned/link-owned"), Some(65534), Some(65534));
}

/// What [`mutate_tree`] is expected to produce in a check report.
#[derive(Debug, Default)]
pub struct Expected {
    /// Exactly these absolute paths are added.
    pub added: BTreeSet<Vec<u8>>,
    /// Exactly these absolute paths are removed.
    pub removed: BTreeSet<Vec<u8>>,
    /// At least these are changed with the `CONTENT_EX` rule (more with richer rules).
    pub changed_min: BTreeSet<Vec<u8>>,
    /// Changed only with rules that include `l` (link name).
    pub changed_with_l: BTreeSet<Vec<u8>>,
    /// Never changed (whatever the rule).
    pub unchanged: BTreeSet<Vec<u8>>,
}

/// Apply the standard set of mutations to a tree built by [`build_tree`]: add and remove
/// files (including tricky names and a whole subtree), change content (also in the middle of
/// the big file, same size), permissions, owner (chown 65534), xattrs, ACLs (access + default),
/// symlink target, file type (file -> directory, file -> fifo, symlink -> file), caps, e2fs flag.
pub fn mutate_tree(root: &Path) -> Expected {
    let q = |rel: &[u8]| p(root, rel);
    let set = |v: &[&[u8]]| v.iter().map(|r| abs(root, r)).collect::<BTreeSet<_>>();

    // added
    write_file(&q(b"etc/added.conf"), b"new\n");
    fs::create_dir(q(b"newdir")).unwrap();
    write_file(&q(b"newdir/f"), b"x\n");
    write_file(&q(b"names/added\nnl\xfe"), b"added tricky\n");

    // removed
    fs::remove_file(q(b"etc/0leading")).unwrap();
    fs::remove_file(q(b"bin/dangling")).unwrap();
    fs::remove_file(q(b"names/bad\xff\xfename")).unwrap();
    fs::remove_file(q(b"data/many/f0007")).unwrap();
    fs::remove_dir_all(q(b"gone")).unwrap();

    // content
    write_file(&q(b"etc/hello.conf"), b"hello world!\n");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(q(b"data/big.bin"))
            .unwrap();
        f.seek(SeekFrom::Start(40 * 1024 * 1024)).unwrap();
        f.write_all(b"!").unwrap();
    }
    // permissions
    chmod(&q(b"data/random.bin"), 0o600);
    chmod(&q(b"bin/suidtool"), 0o755);
    chmod(&q(b"tmp"), 0o777);
    // owner / group
    chown(&q(b"data/sub/a"), Some(65534), None); // hard link: data/hardlink-a changes too
    chown(&q(b"etc/empty"), None, Some(65534));
    // xattrs
    setfattr_remove(&q(b"etc/hello.conf"), "user.comment");
    setfattr_set(&q(b"data/#comment"), "user.new", "added");
    setfattr_set(
        &q(b"etc/tricky-xattr"),
        "user.key with space%#",
        "value two",
    );
    // ACLs
    setfacl(&["-m", "u:nobody:rw"], &q(b"data/acl-add"));
    setfacl(&["-b"], &q(b"etc/acl-existing"));
    setfacl(&["-k"], &q(b"data"));
    // symlink target
    fs::remove_file(q(b"bin/link-rel")).unwrap();
    symlink("/etc/passwd", q(b"bin/link-rel")).unwrap();
    // file type
    fs::remove_file(q(b"etc/to-dir")).unwrap();
    fs::create_dir(q(b"etc/to-dir")).unwrap();
    write_file(&q(b"etc/to-dir/inside"), b"inside\n");
    fs::remove_file(q(b"etc/to-fifo")).unwrap();
    mkfifo(&q(b"etc/to-fifo"));
    fs::remove_file(q(b"bin/link-abs")).unwrap();
    write_file(&q(b"bin/link-abs"), b"was a symlink\n");
    // capabilities (security.capability xattr) removed
    tool_cmd("setcap", &[OsStr::new("-r"), q(b"bin/captool").as_os_str()]);
    // e2fs flag removed (only visible with e2fsattrs)
    try_tool_cmd("chattr", &[OsStr::new("-d"), q(b"data/nodump").as_os_str()]);

    Expected {
        added: set(&[
            b"etc/added.conf",
            b"newdir",
            b"newdir/f",
            b"names/added\nnl\xfe",
            b"etc/to-dir/inside",
        ]),
        removed: set(&[
            b"etc/0leading",
            b"bin/dangling",
            b"names/bad\xff\xfename",
            b"data/many/f0007",
            b"gone",
            b"gone/x",
            b"gone/deeper",
            b"gone/deeper/y",
        ]),
        changed_min: set(&[
            b"etc/hello.conf",
            b"data/big.bin",
            b"data/random.bin",
            b"bin/suidtool",
            b"tmp",
            b"data/sub/a",
            b"data/hardlink-a",
            b"etc/empty",
            b"data/#comment",
            b"etc/tricky-xattr",
            b"data/acl-add",
            b"etc/acl-existing",
            b"data",
            b"etc/to-dir",
            b"etc/to-fifo",
            b"bin/link-abs",
            b"bin/captool",
        ]),
        changed_with_l: set(&[b"bin/link-rel"]),
        unchanged: set(&[
            b"etc/unchanged.conf",
            b"bin/sgidtool",
            b"bin/link-0",
            b"bin/link-space",
            b"dev/null-like",
            b"dev/loop-like",
            b"data/fifo",
            b"data/sock",
            b"names/new\nline",
            b"names/utf8-\xc3\xa9t\xc3\xa9",
            b"names/back\\012notnl",
            b"names/percent%41",
            b"owned/nobody",
            b"owned/link-owned",
        ]),
    }
}

/// Every path under `root` (including `root` itself), without following symlinks: what a
/// rule `<root> ...` must put into the database.
pub fn walk_tree(root: &Path) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        out.insert(p.as_os_str().as_bytes().to_vec());
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}
