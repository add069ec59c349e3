use super::fanotify::{parse, Event, Handle, MAX_EVENT, METADATA_LEN};
use super::*;

/// A well-formed event as the kernel writes it: metadata, a DFID_NAME record, a pidfd record.
fn record(mask: u64, pid: i32, handle: &[u8], name: &[u8], pidfd: i32) -> Vec<u8> {
    let mut fid = Vec::new();
    fid.extend_from_slice(&[libc::FAN_EVENT_INFO_TYPE_DFID_NAME, 0, 0, 0]);
    fid.extend_from_slice(&7i32.to_ne_bytes());
    fid.extend_from_slice(&9i32.to_ne_bytes());
    fid.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
    fid.extend_from_slice(&1i32.to_ne_bytes());
    fid.extend_from_slice(handle);
    fid.extend_from_slice(name);
    fid.push(0);
    while fid.len() % 4 != 0 {
        fid.push(0);
    }
    let len = fid.len() as u16;
    fid[2..4].copy_from_slice(&len.to_ne_bytes());
    let mut pfd = vec![libc::FAN_EVENT_INFO_TYPE_PIDFD, 0, 8, 0];
    pfd.extend_from_slice(&pidfd.to_ne_bytes());
    let total = METADATA_LEN + fid.len() + pfd.len();
    let mut ev = Vec::new();
    ev.extend_from_slice(&(total as u32).to_ne_bytes());
    ev.push(libc::FANOTIFY_METADATA_VERSION);
    ev.push(0);
    ev.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
    ev.extend_from_slice(&mask.to_ne_bytes());
    ev.extend_from_slice(&(-1i32).to_ne_bytes());
    ev.extend_from_slice(&pid.to_ne_bytes());
    ev.extend(fid);
    ev.extend(pfd);
    ev
}

#[test]
fn well_formed_records_parse() {
    let mut buf = record(
        libc::FAN_CLOSE_WRITE,
        42,
        &[1, 2, 3, 4, 5, 6, 7, 8],
        b"passwd",
        5,
    );
    buf.extend(record(
        libc::FAN_CREATE | libc::FAN_ONDIR,
        7,
        &[9; 8],
        b"d",
        -2,
    ));
    let (events, err) = parse(&buf);
    assert_eq!(err, None);
    assert_eq!(
        events[0],
        Event {
            mask: libc::FAN_CLOSE_WRITE,
            pid: 42,
            dir: Some((
                Handle {
                    fsid: [7, 9],
                    kind: 1,
                    bytes: vec![1, 2, 3, 4, 5, 6, 7, 8],
                },
                b"passwd".to_vec()
            )),
            object: None,
            pidfd: Some(5),
        }
    );
    assert_eq!(events[1].pidfd, Some(-2));
    assert_eq!(
        events[1].dir.as_ref().map(|d| d.1.clone()),
        Some(b"d".to_vec())
    );
}

/// xorshift64*: a reproducible stream of arbitrary bytes, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Arbitrary bytes, and well-formed records with arbitrary bytes written over them, truncated
/// or extended: the parser never panics, never reads past the buffer (the slice indexing would
/// panic), returns only names and handles within the kernel's bounds, and parses a prefix of
/// the events of a buffer it rejects.
#[test]
fn arbitrary_bytes_never_panic_and_stay_in_bounds() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = {
        let mut b = record(libc::FAN_ATTRIB, 1, &[3; 8], b"shadow", 4);
        b.extend(record(libc::FAN_DELETE, 2, &[4; 12], b"group", -1));
        b
    };
    for round in 0..200_000 {
        let buf: Vec<u8> = if round % 2 == 0 {
            let n = rng.below(2 * MAX_EVENT);
            (0..n).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = valid.clone();
            for _ in 0..=rng.below(6) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            match rng.below(3) {
                0 => b.truncate(rng.below(b.len() + 1)),
                1 => b.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
                _ => {}
            }
            b
        };
        let (events, err) = parse(&buf);
        for e in &events {
            if let Some((h, name)) = &e.dir {
                assert!(h.bytes.len() <= fanotify::MAX_HANDLE);
                assert!(name.len() <= 255 && !name.contains(&b'/') && !name.contains(&0));
            }
        }
        if err.is_none() {
            assert!(events.len() <= buf.len() / METADATA_LEN);
        }
    }
}

/// The real kernel, when the test runs with CAP_SYS_ADMIN (as root: CI does): a mark on the
/// filesystem of a temporary tree, the tree's directories mapped, a write and a directory
/// created there each resolve to their path with this process as writer; an excluded file
/// does not.
#[test]
fn the_kernel_reports_writes_in_mapped_directories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("etc/sub")).unwrap();
    let Ok(group) = fanotify::Group::open() else {
        panic!("fanotify_init failed: this test needs CAP_SYS_ADMIN (run as root, as CI does)");
    };
    group
        .mark_filesystem(&root)
        .expect("mark the temporary filesystem");
    let r = root.display();
    let cfg = fio_core::config::Config::parse_str(
        &format!("{r}/etc p+sha256\n!{r}/etc/skip$\n"),
        Path::new("aide.conf"),
        &fio_core::config::LoadOptions::default(),
    )
    .unwrap();
    let rules = Arc::new(cfg.rules.clone());
    let mut dirs = Dirs::build(&WalkBuilder::new(b"", rules.clone()), rules);
    assert!(dirs.len() >= 2, "etc and etc/sub mapped");
    std::fs::write(root.join("etc/sub/f"), b"x").unwrap();
    std::fs::write(root.join("etc/skip"), b"x").unwrap();
    std::fs::create_dir(root.join("etc/new")).unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !seen
        .iter()
        .any(|(p, _): &(String, i32)| p.ends_with("/etc/new"))
        && std::time::Instant::now() < deadline
    {
        let mut events = Vec::new();
        assert_eq!(group.read(&mut buf, &mut events).unwrap(), None);
        for ev in events {
            if let Some(fd) = ev.pidfd {
                assert!(
                    fd < 0 || fanotify::pidfd_alive(fd),
                    "our own pidfd is alive"
                );
                fanotify::close(fd);
            }
            if let Some((p, is_dir)) = dirs.resolve(&ev) {
                if is_dir {
                    dirs.add(&p);
                }
                seen.push((String::from_utf8_lossy(&p).into_owned(), ev.pid));
            }
        }
    }
    let me = std::process::id() as i32;
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        paths.contains(&format!("{r}/etc/sub/f").as_str()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&format!("{r}/etc/new").as_str()),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.ends_with("/etc/skip")), "{paths:?}");
    assert!(seen.iter().all(|(_, pid)| *pid == me));
}

#[test]
fn pending_is_bounded_and_a_flood_opens_a_gap() {
    let mut p = Pending::default();
    for i in 0..MAX_PENDING {
        p.add(format!("/f{i}").into_bytes(), Writer::default());
    }
    assert!(p.gap.is_none());
    p.add(b"/one-more".to_vec(), Writer::default());
    assert!(p.gap.is_some(), "a gap, not growth");
    assert!(p.paths.is_empty());
    p.add(b"/after".to_vec(), Writer::default());
    assert!(
        p.paths.is_empty(),
        "nothing is collected while the gap is open"
    );
}
