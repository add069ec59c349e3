//! Confining the privileged per-node daemon (issue 4, section 1).
//!
//! [`harden`] runs once, at the very start of the process, before any other thread exists (the
//! tokio runtime must be built by hand afterwards: capabilities, seccomp without TSYNC and
//! Landlock before ABI v8 act on the calling thread only, and threads created later inherit
//! all of them). It is irreversible. In this order:
//!
//! 1. `namespace`: its own mount namespace (`unshare(CLONE_NEWNS)`), every mount made a slave:
//!    nothing propagates back to the node, but the node's unmounts still reach us. Private
//!    copies would pin every filesystem mounted on the node when the daemon started (CSI volumes
//!    could then not be detached, OCPBUGS-14947). A filesystem the node mounts later arrives
//!    writable; Landlock (step 5) is what keeps it from being written.
//! 2. `readonly host root`: the host root is bind-mounted onto itself (recursively) and made
//!    read-only, nosuid, nodev, submounts included (`mount_setattr(AT_RECURSIVE)`, or one
//!    remount per mount listed in `/proc/self/mountinfo` on kernels before 5.12: a plain
//!    `MS_REMOUNT|MS_REC|MS_RDONLY` leaves the submounts writable). Then each `writable`
//!    directory is bound onto itself and only that bind is made writable again.
//! 3. `no_new_privs`.
//! 4. `capabilities`: bounding set first (needs CAP_SETPCAP, still effective), then ambient and
//!    inheritable, then effective and permitted, keeping at most CAP_DAC_READ_SEARCH. From here on
//!    no mount is possible any more, which is why the mount steps come first.
//! 5. `landlock` (best effort): read (and execute) everywhere, write only beneath the `writable`
//!    directories (and `/dev/null`). A kernel without Landlock is recorded in the report, not an
//!    error.
//! 6. `seccomp`: a deny-list answering EPERM to the calls that could undo the above or escape
//!    (`open_by_handle_at`, mounts, namespaces, ptrace, bpf, modules, kexec, ...), everything
//!    else allowed (tokio, rustls and the kube client keep working).
//!
//! Landlock comes before seccomp (the brief listed it after): the filter is then the very last
//! step, so it can later become an allow-list without having to allow the `landlock_*` calls.
//! Nothing else differs.
//!
//! A final `verify` step reads `/proc/self/status` back and refuses if the capability sets,
//! NoNewPrivs or Seccomp are not what was asked for.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};

/// What to confine and what stays writable.
#[derive(Debug, Clone, Default)]
pub struct HardenOptions {
    /// The node's root as the daemon sees it (`/hostroot`): read-only afterwards, submounts too.
    pub host_root: PathBuf,
    /// Directories that stay writable: the database directory (`<host_root>/etc/kubernetes`)
    /// and the daemon's state directory. Each must exist and be given as a canonical path (no
    /// symbolic link anywhere: a node could otherwise point `etc/kubernetes` at `/`).
    pub writable: Vec<PathBuf>,
    /// Keep CAP_DAC_READ_SEARCH (read files the daemon does not own); otherwise no capability.
    pub keep_dac_read_search: bool,
    /// How the host root is made read-only recursively.
    pub readonly_method: ReadonlyMethod,
}

/// How [`harden`] makes the host root and its submounts read-only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadonlyMethod {
    /// `mount_setattr(AT_RECURSIVE)`; per-mount remounts when the kernel lacks it (ENOSYS).
    #[default]
    Auto,
    /// Always one `MS_REMOUNT|MS_BIND` per mount at or below the host root, as listed in
    /// `/proc/self/mountinfo` (what kernels before 5.12 get; selectable to test it).
    Remount,
}

/// What was done, one line per step, for the log.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Steps are `String`s, not `&'static str`: some say how (which mount API, the Landlock ABI).
    pub steps: Vec<String>,
    /// False when the kernel has no Landlock (the only step allowed to be missing).
    pub landlock_enforced: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    #[error(
        "hardening must run before any other thread exists, but this process has {threads} threads"
    )]
    Threads { threads: usize },
    #[error("hardening step '{step}' failed: {source}")]
    Step {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("hardening step '{step}' failed: {path}: {reason}")]
    Path {
        step: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("hardening step 'verify' failed: {0}")]
    Verify(String),
}

impl HardenError {
    /// The step that failed (`threads` for the thread check).
    pub fn step(&self) -> &'static str {
        match self {
            HardenError::Threads { .. } => "threads",
            HardenError::Step { step, .. } | HardenError::Path { step, .. } => step,
            HardenError::Verify(_) => "verify",
        }
    }
}

fn step_err(step: &'static str) -> impl FnOnce(io::Error) -> HardenError {
    move |source| HardenError::Step { step, source }
}

fn other(step: &'static str, e: impl std::fmt::Display) -> HardenError {
    HardenError::Step {
        step,
        source: io::Error::other(e.to_string()),
    }
}

/// The lines of `/proc/<pid>/status` hardening is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatus {
    pub threads: usize,
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    pub no_new_privs: bool,
    /// 0 none, 1 strict, 2 filter.
    pub seccomp: u32,
}

impl ProcStatus {
    /// Parse the text of a `/proc/<pid>/status` file; missing lines stay 0.
    pub fn parse(text: &str) -> ProcStatus {
        let mut s = ProcStatus::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let hex = || u64::from_str_radix(value, 16).unwrap_or(0);
            match key {
                "Threads" => s.threads = value.parse().unwrap_or(0),
                "CapInh" => s.cap_inh = hex(),
                "CapPrm" => s.cap_prm = hex(),
                "CapEff" => s.cap_eff = hex(),
                "CapBnd" => s.cap_bnd = hex(),
                "CapAmb" => s.cap_amb = hex(),
                "NoNewPrivs" => s.no_new_privs = value == "1",
                "Seccomp" => s.seccomp = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        s
    }

    /// This process's status.
    pub fn current() -> io::Result<ProcStatus> {
        Ok(ProcStatus::parse(&std::fs::read_to_string(
            "/proc/self/status",
        )?))
    }
}

/// The capability mask [`harden`] leaves in every set but ambient and inheritable.
pub fn kept_mask(keep_dac_read_search: bool) -> u64 {
    if keep_dac_read_search {
        1 << Capability::CAP_DAC_READ_SEARCH.index()
    } else {
        0
    }
}

/// Confine this process. Irreversible; see the module documentation for the steps.
pub fn harden(opts: &HardenOptions) -> Result<Report, HardenError> {
    let status = ProcStatus::current().map_err(step_err("threads"))?;
    if status.threads != 1 {
        return Err(HardenError::Threads {
            threads: status.threads,
        });
    }
    check_paths(opts)?;
    // Built before anything changes: a filter that does not compile changes nothing.
    let filters = seccomp_filters()?;
    let mut report = Report::default();

    // 1. Own mount namespace: nothing propagates to the node, the node's unmounts reach us.
    // SAFETY: plain system call with a constant flag.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(HardenError::Step {
            step: "namespace",
            source: io::Error::last_os_error(),
        });
    }
    mount(
        None,
        Path::new("/"),
        libc::MS_REC | libc::MS_SLAVE,
        "namespace",
    )?;
    report
        .steps
        .push("namespace: own mount namespace, all mounts slaves of the node's".into());

    // 2. The host root read-only, then the writable directories.
    let step = "readonly host root";
    mount(
        Some(&opts.host_root),
        &opts.host_root,
        libc::MS_BIND | libc::MS_REC,
        step,
    )?;
    let how = make_readonly(&opts.host_root, opts.readonly_method)?;
    report.steps.push(format!(
        "readonly host root: {} read-only, nosuid, nodev ({how})",
        opts.host_root.display()
    ));
    for dir in &opts.writable {
        let step = "writable bind";
        mount(Some(dir), dir, libc::MS_BIND | libc::MS_REC, step)?;
        make_writable(dir, opts.readonly_method)?;
        report.steps.push(format!(
            "writable bind: {} writable, nosuid, nodev",
            dir.display()
        ));
    }

    // 3. No privilege through execve any more.
    // SAFETY: plain prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(HardenError::Step {
            step: "no_new_privs",
            source: io::Error::last_os_error(),
        });
    }
    report.steps.push("no_new_privs: set".into());

    // 4. Capabilities.
    drop_capabilities(opts.keep_dac_read_search)?;
    report.steps.push(if opts.keep_dac_read_search {
        "capabilities: all dropped but CAP_DAC_READ_SEARCH".into()
    } else {
        "capabilities: all dropped".into()
    });

    // 5. Landlock, best effort.
    let landlock = landlock(opts)?;
    report.landlock_enforced = landlock.is_some();
    report.steps.push(match landlock {
        Some(how) => format!("landlock: {how}"),
        None => "landlock: not supported by this kernel".into(),
    });

    // 6. Seccomp, last.
    for f in &filters {
        seccompiler::apply_filter_all_threads(f).map_err(|e| other("seccomp", e))?;
    }
    report.steps.push(format!(
        "seccomp: {} calls denied with EPERM, namespace flags of clone denied, clone3 ENOSYS",
        DENIED.len()
    ));

    verify(opts.keep_dac_read_search)?;
    report
        .steps
        .push("verify: /proc/self/status as expected".into());
    Ok(report)
}

fn check_paths(opts: &HardenOptions) -> Result<(), HardenError> {
    let mut all = vec![("host root", "readonly host root", &opts.host_root)];
    all.extend(
        opts.writable
            .iter()
            .map(|w| ("writable directory", "writable bind", w)),
    );
    for (what, step, p) in all {
        let bad = |reason: String| HardenError::Path {
            step,
            path: p.clone(),
            reason,
        };
        if !p.is_absolute() {
            return Err(bad(format!("the {what} must be an absolute path")));
        }
        let canon = std::fs::canonicalize(p).map_err(|e| bad(e.to_string()))?;
        if canon != *p {
            return Err(bad(format!(
                "the {what} must be a canonical path (it resolves to {})",
                canon.display()
            )));
        }
        if !canon.is_dir() {
            return Err(bad(format!("the {what} is not a directory")));
        }
    }
    Ok(())
}

fn cstr(p: &Path, step: &'static str) -> Result<CString, HardenError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| other(step, e))
}

fn mount(
    src: Option<&Path>,
    target: &Path,
    flags: libc::c_ulong,
    step: &'static str,
) -> Result<(), HardenError> {
    let src = src.map(|s| cstr(s, step)).transpose()?;
    let target = cstr(target, step)?;
    // SAFETY: NUL-terminated strings or null, no data argument.
    let r = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(HardenError::Step {
            step,
            source: io::Error::other(format!(
                "mount {}: {}",
                target.to_string_lossy(),
                io::Error::last_os_error()
            )),
        })
    }
}

/// `struct mount_attr` of `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

fn mount_setattr(path: &Path, recursive: bool, set: u64, clr: u64) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 } | libc::AT_NO_AUTOMOUNT;
    // SAFETY: valid path and a mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn make_readonly(root: &Path, method: ReadonlyMethod) -> Result<&'static str, HardenError> {
    let step = "readonly host root";
    if method == ReadonlyMethod::Auto {
        match mount_setattr(
            root,
            true,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            0,
        ) {
            Ok(()) => return Ok("mount_setattr AT_RECURSIVE"),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Err(e) => return Err(step_err(step)(e)),
        }
    }
    let mounts = mounts_below(root).map_err(step_err(step))?;
    for (point, flags) in mounts {
        remount(
            &point,
            flags | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            step,
        )?;
    }
    Ok("one remount per mount")
}

fn make_writable(dir: &Path, method: ReadonlyMethod) -> Result<(), HardenError> {
    let step = "writable bind";
    if method == ReadonlyMethod::Auto {
        match mount_setattr(
            dir,
            false,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            MOUNT_ATTR_RDONLY,
        ) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Err(e) => return Err(step_err(step)(e)),
        }
    }
    let flags = mounts_below(dir)
        .map_err(step_err(step))?
        .into_iter()
        .find(|(p, _)| p == dir)
        .map_or(0, |(_, f)| f);
    remount(
        dir,
        (flags & !libc::MS_RDONLY) | libc::MS_NOSUID | libc::MS_NODEV,
        step,
    )
}

fn remount(point: &Path, flags: libc::c_ulong, step: &'static str) -> Result<(), HardenError> {
    mount(None, point, libc::MS_REMOUNT | libc::MS_BIND | flags, step)
}

/// The mount points at or below `root` in this namespace (topmost mount last when stacked) with
/// their per-mount flags, which a bind remount must repeat (or the kernel refuses to clear
/// locked ones).
fn mounts_below(root: &Path) -> io::Result<Vec<(PathBuf, libc::c_ulong)>> {
    let text = std::fs::read("/proc/self/mountinfo")?;
    Ok(crate::view::parse(&text)
        .into_iter()
        .filter(|m| m.point.starts_with(root))
        .map(|m| (m.point, m.flags))
        .collect())
}

fn drop_capabilities(keep_dac_read_search: bool) -> Result<(), HardenError> {
    let step = "capabilities";
    let mut keep = CapsHashSet::new();
    if keep_dac_read_search {
        keep.insert(Capability::CAP_DAC_READ_SEARCH);
    }
    // Bounding set first: PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set, still there.
    for c in caps::all() {
        if keep.contains(&c) || !caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) {
            continue;
        }
        caps::drop(None, CapSet::Bounding, c).map_err(|e| other(step, e))?;
    }
    // Capabilities of a kernel newer than the `caps` crate.
    let known = caps::all().iter().map(|c| c.index()).max().unwrap_or(0);
    let last: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(known);
    for n in known + 1..=last {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(n), 0, 0, 0) } != 0 {
            return Err(other(
                step,
                format!(
                    "dropping capability {n} from the bounding set: {}",
                    io::Error::last_os_error()
                ),
            ));
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| other(step, e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| other(step, e))?;
    // Effective must stay a subset of permitted: shrink it first.
    caps::set(None, CapSet::Effective, &keep).map_err(|e| other(step, e))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| other(step, e))?;
    Ok(())
}

fn landlock(opts: &HardenOptions) -> Result<Option<String>, HardenError> {
    use landlock::{
        Access, AccessFs, BitFlags, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, ABI,
    };
    let step = "landlock";
    let le = |e: landlock::RulesetError| other(step, e);
    // V5 is the newest ABI with file-system rights (later ones add scopes and logging).
    let abi = ABI::V5;
    let all = AccessFs::from_all(abi);
    let read: BitFlags<AccessFs> = AccessFs::from_read(abi);
    let write = all & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    let mut ruleset = Ruleset::default()
        .handle_access(all)
        .map_err(|e| other(step, e))?
        .create()
        .map_err(le)?
        .add_rule(PathBeneath::new(
            PathFd::new("/").map_err(|e| other(step, e))?,
            read,
        ))
        .map_err(le)?;
    for dir in &opts.writable {
        let fd = PathFd::new(dir).map_err(|e| other(step, e))?;
        ruleset = ruleset.add_rule(PathBeneath::new(fd, write)).map_err(le)?;
    }
    if let Ok(fd) = PathFd::new("/dev/null") {
        ruleset = ruleset
            .add_rule(PathBeneath::new(
                fd,
                AccessFs::ReadFile | AccessFs::WriteFile,
            ))
            .map_err(le)?;
    }
    let status = ruleset.restrict_self().map_err(le)?;
    Ok(match (status.ruleset, status.landlock) {
        (RulesetStatus::NotEnforced, _) => None,
        (RulesetStatus::FullyEnforced, LandlockStatus::Available { effective_abi, .. }) => {
            Some(format!(
                "read-only but the writable directories (ABI {effective_abi:?}, fully enforced)"
            ))
        }
        (s, _) => Some(format!("read-only but the writable directories ({s:?})")),
    })
}

/// The calls the seccomp filter answers with EPERM. `name_to_handle_at` is allowed: the
/// realtime watcher compares the handles of directories with those fanotify reports; a handle
/// opens nothing without `open_by_handle_at`, which stays denied.
pub const DENIED: &[(&str, libc::c_long)] = &[
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
];

/// Namespace flags `clone` may not be given (a new user namespace would bring capabilities
/// back inside it).
const CLONE_NS_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWTIME,
];

/// Two filters: the deny-list (EPERM) and `clone3` answered ENOSYS. `clone3` passes its flags in
/// memory a filter cannot read, so it is refused the way container runtimes do it: the C library
/// then falls back to `clone`, whose flags the first filter checks.
fn seccomp_filters() -> Result<Vec<seccompiler::BpfProgram>, HardenError> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let step = "seccomp";
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| other(step, e))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&(_, nr)| (nr, Vec::new())).collect();
    let clone_rules = CLONE_NS_FLAGS
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| other(step, e))?;
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| other(step, e))?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| other(step, e))?;
    [deny, clone3]
        .into_iter()
        .map(|f| seccompiler::BpfProgram::try_from(f).map_err(|e| other(step, e)))
        .collect()
}

fn verify(keep_dac_read_search: bool) -> Result<(), HardenError> {
    let s = ProcStatus::current().map_err(step_err("verify"))?;
    let keep = kept_mask(keep_dac_read_search);
    let mut wrong = Vec::new();
    for (name, v) in [
        ("CapEff", s.cap_eff),
        ("CapPrm", s.cap_prm),
        ("CapBnd", s.cap_bnd),
    ] {
        if v & !keep != 0 {
            wrong.push(format!("{name} {v:016x}"));
        }
    }
    for (name, v) in [("CapAmb", s.cap_amb), ("CapInh", s.cap_inh)] {
        if v != 0 {
            wrong.push(format!("{name} {v:016x}"));
        }
    }
    if !s.no_new_privs {
        wrong.push("NoNewPrivs 0".into());
    }
    if s.seccomp != 2 {
        wrong.push(format!("Seccomp {}", s.seccomp));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(HardenError::Verify(format!(
            "/proc/self/status shows {}",
            wrong.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let text = "Name:\tfio-scanner\nThreads:\t1\nCapInh:\t0000000000000000\n\
                    CapPrm:\t0000000000000004\nCapEff:\t0000000000000004\n\
                    CapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n\
                    Seccomp:\t2\nSeccomp_filters:\t2\n";
        let s = ProcStatus::parse(text);
        assert_eq!(s.threads, 1);
        assert_eq!(s.cap_eff, 4);
        assert_eq!(s.cap_prm, kept_mask(true));
        assert_eq!(s.cap_bnd, 0x1fffeffffff);
        assert!(s.no_new_privs);
        assert_eq!(s.seccomp, 2);
    }

    #[test]
    fn seccomp_filters_compile() {
        assert_eq!(seccomp_filters().unwrap().len(), 2);
    }
}
