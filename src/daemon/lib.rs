//! The daemon pod (`fio-operator daemon`): confine the process ([`harden`]), follow its
//! FileIntegrity, read the AIDE configuration through the API, act on re-init requests exactly
//! once, run fio-core's [`runner`](fio_core::runner) and report every scan as the contract's
//! [`ScanReport`] in the result ConfigMap `aide-<fi>-<node>` ([`outbox`]).

pub mod claim;
pub mod harden;
pub mod liveness;
pub mod outbox;
pub mod view;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use fio_api::report::{ScanCondition, ScanFigures, ScanReport};
use fio_api::{aideconf, names, FileIntegrity, Holdoff, ReinitRequests};
use fio_core::atomic::replace_file;
use fio_core::config::LoadOptions;
use fio_core::runner::{self, say, NodeScanner, OwnFiles, Verdict};

/// What the DaemonSet's arguments say.
#[derive(Debug, Clone)]
pub struct Options {
    pub owner: String,
    pub namespace: String,
    /// The ConfigMap with the rendered AIDE configuration (`<fi>`).
    pub config_map: String,
    /// Where the node's root filesystem is (`/hostroot` in the pod; a directory per simulated
    /// node in tests).
    pub hostroot: PathBuf,
    pub interval: Duration,
    pub max_backups: usize,
    pub node_name: String,
    /// Always gzip+base64 the report (upstream's `--lc-compress`).
    pub force_compress: bool,
    /// Compare the daemon's view of the host with the node's around every scan ([`view`]).
    /// Off only for simulated nodes whose root is a plain directory (`--insecure-no-view-check`).
    pub check_view: bool,
}

/// The daemon's private directory (the config fetched from the API), created if missing: one
/// of the two places it may write once hardened.
pub fn state_dir(opts: &Options) -> anyhow::Result<PathBuf> {
    let state = std::env::temp_dir().join(state_dir_name(opts));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)
        .with_context(|| format!("creating {}", state.display()))?;
    Ok(state)
}

fn state_dir_name(opts: &Options) -> String {
    format!("fio-daemon-{}-{}", opts.owner, opts.node_name)
}

/// What [`confine`] did, and the directories it left writable (the daemon's own mounts).
pub struct Confined {
    pub report: harden::Report,
    pub writable: Vec<PathBuf>,
}

/// Confine the process (see [`harden`]): the node root read-only, writes only in its
/// database directory and the state directory. Must run before any other thread exists.
pub fn confine(opts: &Options) -> anyhow::Result<Confined> {
    let canonical = |p: &Path| {
        fs::canonicalize(p).with_context(|| format!("hardening: resolving {}", p.display()))
    };
    let host_root = canonical(&opts.hostroot)?;
    // OpenShift nodes have /etc/kubernetes; k3s and other distributions may not. Created before
    // the host root turns read-only (and then canonicalised: a symbolic link is refused there).
    let wanted = db_dir(&host_root);
    if !wanted.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&wanted)
            .with_context(|| format!("creating {}", wanted.display()))?;
    }
    let db_dir = canonical(&wanted)?;
    let state = canonical(&state_dir(opts)?)?;
    let writable = vec![db_dir, state];
    let report = harden::harden(&harden::HardenOptions {
        host_root,
        writable: writable.clone(),
        keep_dac_read_search: true,
        ..Default::default()
    })?;
    Ok(Confined { report, writable })
}

/// The view of the host checked, as the scan's verdict sees it: `Err` is the Errored message
/// (altered, or impossible to check).
async fn observe(
    checker: &Option<view::Checker>,
) -> anyhow::Result<Result<Option<view::Observation>, String>> {
    let Some(c) = checker.clone() else {
        return Ok(Ok(None));
    };
    let seen = tokio::task::spawn_blocking(move || c.check()).await?;
    Ok(match seen {
        Ok(o) => match o.altered_message() {
            Some(message) => Err(message),
            None => Ok(Some(o)),
        },
        Err(e) => Err(e.to_string()),
    })
}

/// Where the node's database, logs and backups live (the seed's `/etc/kubernetes`).
fn db_dir(hostroot: &Path) -> PathBuf {
    hostroot.join("etc/kubernetes")
}

/// The completed re-init id, per FileIntegrity uid, kept next to the database.
fn reinit_id_path(hostroot: &Path) -> PathBuf {
    db_dir(hostroot).join("aide.reinit-id")
}

fn read_completed(path: &Path, uid: &str) -> i64 {
    let Ok(text) = fs::read_to_string(path) else {
        return 0;
    };
    let mut it = text.split_whitespace();
    match (it.next(), it.next().and_then(|n| n.parse().ok())) {
        (Some(u), Some(id)) if u == uid => id,
        _ => 0,
    }
}

/// The re-init trigger file of upstream's versions before 0.1.22 (later ones use /run). Left on
/// a node that ran them, it must not re-initialise anything after an upgrade to us: removed.
fn legacy_reinit_trigger(hostroot: &Path) -> PathBuf {
    db_dir(hostroot).join("aide.reinit")
}

fn remove_legacy_reinit_trigger(hostroot: &Path) {
    remove_trigger(&legacy_reinit_trigger(hostroot), "older operator versions");
}

/// The re-init trigger of upstream's current versions (`/run/aide.reinit`, touched by its
/// `aide-ini-*` DaemonSets). Ours never reads it; left on a node by an in-flight upstream
/// re-init, it would re-initialise the node if upstream were installed again. Outside the
/// database directory, so removed before the host root turns read-only.
fn upstream_reinit_trigger(hostroot: &Path) -> PathBuf {
    hostroot.join("run/aide.reinit")
}

fn remove_trigger(path: &Path, whose: &str) {
    match fs::remove_file(path) {
        Ok(()) => say(&format!(
            "removed {} (the re-init trigger of {whose}; re-inits are requested through the \
             FileIntegrity now)",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("removing {}: {e}", path.display()),
    }
}

/// Created by an OpenShift node during its first boot, possibly after the daemon starts; its
/// appearance changes the link count of `/etc/kubernetes`, which the default configuration
/// checks. Upstream's DaemonSet waits for it with an init container (`check-folder`) that fails
/// the pod, forever, on a node without it; ours waits before the first baseline only, bounded,
/// and only on a node the machine-config daemon manages.
const STATIC_POD_RESOURCES: &str = "etc/kubernetes/static-pod-resources";
/// Present on every node the machine-config daemon manages (an OpenShift node).
const MACHINE_CONFIG_DAEMON_DIR: &str = "etc/machine-config-daemon";
/// How long the first baseline waits for [`STATIC_POD_RESOURCES`] at most.
const BOOT_WAIT: Duration = Duration::from_secs(900);
const BOOT_POLL: Duration = Duration::from_secs(2);

/// An OpenShift node that has not created [`STATIC_POD_RESOURCES`] yet and has no baseline.
fn booting_openshift_node(hostroot: &Path) -> bool {
    !db_dir(hostroot).join("aide.db.gz").exists()
        && hostroot.join(MACHINE_CONFIG_DAEMON_DIR).is_dir()
        && !hostroot.join(STATIC_POD_RESOURCES).exists()
}

/// Before the first baseline of a booting OpenShift node: wait for [`STATIC_POD_RESOURCES`],
/// at most [`BOOT_WAIT`], saying so (a look at two paths every [`BOOT_POLL`], nothing else).
async fn wait_for_static_pod_resources(
    opts: &Options,
    hb: &liveness::Heartbeat,
    rx: &mut watch::Receiver<Option<Arc<FileIntegrity>>>,
) -> anyhow::Result<()> {
    let booting = || {
        let root = opts.hostroot.clone();
        tokio::task::spawn_blocking(move || booting_openshift_node(&root))
    };
    if !booting().await? {
        return Ok(());
    }
    let node = &opts.node_name;
    say(&format!(
        "node {node}: waiting up to {BOOT_WAIT:?} for /{STATIC_POD_RESOURCES} before taking the \
         first baseline (an OpenShift node creates it during its first boot; a baseline taken \
         before fails at the next scan: OCPBUGS-36483)"
    ));
    let since = std::time::Instant::now();
    while booting().await? {
        if since.elapsed() >= BOOT_WAIT {
            say(&format!(
                "node {node}: /{STATIC_POD_RESOURCES} still missing after {BOOT_WAIT:?}: taking \
                 the first baseline without it"
            ));
            return Ok(());
        }
        wait(hb, rx, BOOT_POLL, |_| false).await?;
    }
    say(&format!(
        "node {node}: /{STATIC_POD_RESOURCES} is there: taking the first baseline"
    ));
    Ok(())
}

/// How long the daemon keeps trying to build its client before it exits (the kubelet restarts
/// it): the service account token or the API server's address can appear a little after the
/// container starts (upstream exited at once and crash-looped).
const CLIENT_RETRY: Duration = Duration::from_secs(120);

async fn client_with_retry() -> anyhow::Result<Client> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        match Client::try_default().await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() + delay < CLIENT_RETRY => {
                tracing::warn!("building the Kubernetes client: {e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(16));
            }
            Err(e) => {
                return Err(e).context(format!(
                    "building the Kubernetes client (in-cluster or $KUBECONFIG), tried for {:?}",
                    started.elapsed()
                ))
            }
        }
    }
}

/// Run until the process is stopped. Errors only when the cluster cannot be reached at all.
pub async fn run(opts: Options, checker: Option<view::Checker>) -> anyhow::Result<()> {
    say(runner::LOG_START);
    remove_legacy_reinit_trigger(&opts.hostroot);
    let client = client_with_retry().await?;
    let fis: Api<FileIntegrity> = Api::namespaced(client.clone(), &opts.namespace);
    let owners = fis.clone();
    let (tx, mut rx) = watch::channel::<Option<Arc<FileIntegrity>>>(None);
    let selector = format!("metadata.name={}", opts.owner);
    tokio::spawn(async move {
        let mut events = watcher(fis, watcher::Config::default().fields(&selector))
            .default_backoff()
            .boxed();
        while let Some(ev) = events.next().await {
            match ev {
                Ok(watcher::Event::Apply(fi) | watcher::Event::InitApply(fi)) => {
                    tx.send_replace(Some(Arc::new(fi)));
                }
                Ok(watcher::Event::Delete(_)) => {
                    tx.send_replace(None);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("watching the FileIntegrity: {e}"),
            }
        }
    });

    let state = state_dir(&opts)?;
    let scanner = NodeScanner {
        config_path: state.join("aide.conf"),
        load: LoadOptions::default(),
        max_backups: opts.max_backups,
        node_name: opts.node_name.clone(),
        own: Some(OwnFiles::in_dir(&db_dir(&opts.hostroot))),
    };
    let id_path = reinit_id_path(&opts.hostroot);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &opts.namespace);
    let outbox = outbox::Outbox::start(cms.clone(), opts.namespace.clone());
    let mut paused = false;
    let hb = liveness::Heartbeat::in_dir(&state);
    hb.expect_within(liveness::SLACK);
    wait_for_static_pod_resources(&opts, &hb, &mut rx).await?;

    loop {
        let fi = loop {
            if let Some(fi) = rx.borrow_and_update().clone() {
                break fi;
            }
            wait(&hb, &mut rx, Duration::from_secs(60), |_| true).await?;
        };
        // Paused while the node is updated (annotation holdoff): no scan, no re-init; the
        // operator requests the re-init in the same write that ends the pause.
        if Holdoff::of(&fi).holds(&opts.node_name) {
            if !paused {
                say(&format!(
                    "holding off scans on node {}: paused by annotation {}",
                    opts.node_name,
                    names::HOLDOFF_ANNOTATION
                ));
                paused = true;
            }
            let node = opts.node_name.clone();
            wait(&hb, &mut rx, opts.interval, move |fi| {
                !Holdoff::of(fi).holds(&node)
            })
            .await?;
            continue;
        }
        if std::mem::take(&mut paused) {
            say(&format!("scans resumed on node {}", opts.node_name));
        }
        let uid = fi.uid().unwrap_or_default();
        let take_over = match own_files(&owners, &opts, &uid).await? {
            Ownership::Ours => false,
            Ownership::Gone => true,
            Ownership::Held(message) => {
                say(&format!("node {}: {message}", opts.node_name));
                outbox.send(refused(&opts, message, None), uid.clone());
                wait(&hb, &mut rx, opts.interval, |_| false).await?;
                continue;
            }
        };
        let requests = match ReinitRequests::of(&fi) {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                tracing::warn!("{e}; using the copy in the status");
                ReinitRequests::recorded(&fi).unwrap_or_default()
            }
        };
        let wanted = requests.requested(&opts.node_name);
        let (path, u) = (id_path.clone(), uid.clone());
        let mut completed = tokio::task::spawn_blocking(move || read_completed(&path, &u)).await?;

        let text = match cms.get_opt(&opts.config_map).await {
            Ok(Some(cm)) => cm
                .data
                .and_then(|mut d| d.remove(names::DEFAULT_CONFIG_DATA_KEY))
                .unwrap_or_default(),
            Ok(None) => String::new(),
            Err(e) => {
                tracing::warn!("reading ConfigMap {}: {e}", opts.config_map);
                String::new()
            }
        };
        if text.is_empty() {
            tracing::info!("waiting for the AIDE configuration {}", opts.config_map);
            wait(&hb, &mut rx, Duration::from_secs(2), |_| false).await?;
            continue;
        }
        if wanted > completed && requests.config != aideconf::config_hash(&text) {
            tracing::info!("re-init request {wanted}: waiting for its configuration");
            wait(&hb, &mut rx, Duration::from_secs(1), |_| false).await?;
            continue;
        }
        let local = if opts.hostroot == Path::new(aideconf::HOSTROOT) {
            text
        } else {
            aideconf::map_hostroot(&text, &opts.hostroot)
        };
        let path = scanner.config_path.clone();
        tokio::task::spawn_blocking(move || replace_file(&path, local.as_bytes(), 0o600))
            .await?
            .with_context(|| format!("writing {}", scanner.config_path.display()))?;

        // A scan that never ends (a read that never returns) fails the liveness probe.
        hb.expect_within(liveness::MAX_SCAN);
        // What the scan (or an initialisation) would read must be what the node shows: no
        // baseline is taken, no verdict given, through an altered view.
        if let Err(message) = observe(&checker).await? {
            say(&format!("node {}: {message}", opts.node_name));
            outbox.send(refused(&opts, message, Some(completed)), uid.clone());
            wait(&hb, &mut rx, opts.interval, |_| false).await?;
            continue;
        }
        let mut failed_init = None;
        let mut initialized = None;
        let s = scanner.clone();
        // Files taken over from a deleted FileIntegrity: its database is no baseline of ours.
        let reinit = wanted > completed || take_over;
        // Loading the configuration may read includes and run programs: off the runtime.
        let fresh = !reinit && tokio::task::spawn_blocking(move || s.needs_init()).await?;
        if reinit || fresh {
            // Upstream removes its old trigger at every re-init, not only at start: one placed
            // on a running node goes with the next re-init.
            remove_legacy_reinit_trigger(&opts.hostroot);
            let mut s = scanner.clone();
            // Re-inits nobody asked for (a node update's, a take-over) keep every backup.
            if take_over || (wanted > completed && requests.keeps_backups(&opts.node_name, wanted))
            {
                s.max_backups = usize::MAX;
            }
            match tokio::task::spawn_blocking(move || s.init(reinit)).await? {
                Ok(b) if reinit => {
                    let line = format!("{uid} {wanted}\n");
                    let path = id_path.clone();
                    let (dir, me) = (db_dir(&opts.hostroot), me(&opts, &uid));
                    let recorded = tokio::task::spawn_blocking(move || {
                        replace_file(&path, line.as_bytes(), 0o600)?;
                        if take_over {
                            claim::take_over(&dir, &me).map_err(std::io::Error::other)?;
                        }
                        Ok::<_, std::io::Error>(())
                    });
                    match recorded.await? {
                        Ok(()) => {
                            completed = wanted;
                            initialized = Some(b);
                        }
                        Err(e) => {
                            failed_init = Some(Verdict::Errored {
                                exit: None,
                                message: format!(
                                    "recording re-init {wanted} in {}: {e}",
                                    id_path.display()
                                ),
                            })
                        }
                    }
                }
                Ok(b) => initialized = Some(b),
                Err(r) => failed_init = Some(r),
            }
        }
        let started = std::time::Instant::now();
        let (mut result, db, files) = match failed_init {
            Some(r) => (r, None, None),
            None => {
                let s = scanner.clone();
                let fresh = initialized.clone();
                tokio::task::spawn_blocking(move || {
                    // The result names the database by the bytes the check read (sealed); the
                    // operator judges it against the node's anchor, which the daemon cannot
                    // read (it reads no node status: see deploy/rbac/daemon_role.yaml).
                    let c = s.check_sealed(&|_| Ok(()));
                    // Right after an initialisation its figures (entries) are the richer ones.
                    let db = match (fresh, c.database) {
                        (Some(f), Some(d)) if f.sha256 == d.sha256 => Some(f),
                        (_, Some(d)) => Some(d),
                        (f, None) => f,
                    };
                    (c.verdict, db, c.files)
                })
                .await?
            }
        };
        // Paused while this scan ran: the update may have changed files under it already.
        let held_now = rx
            .borrow()
            .as_deref()
            .is_some_and(|fi| Holdoff::of(fi).holds(&opts.node_name));
        if held_now && initialized.is_none() {
            say(&format!(
                "scan result for node {} discarded: scans were paused while it ran",
                opts.node_name
            ));
            continue;
        }
        // Checked again after the scan: a mount made while it ran.
        let seen = match observe(&checker).await? {
            Ok(seen) => seen,
            Err(message) => {
                result = Verdict::Errored {
                    exit: None,
                    message,
                };
                None
            }
        };
        say(&format!(
            "scan result for node {}: {}",
            opts.node_name,
            result.condition()
        ));
        let scan = ScanReport {
            owner: opts.owner.clone(),
            node: opts.node_name.clone(),
            condition: ScanCondition::from_verdict(&result, &opts.node_name, opts.force_compress),
            reinit_id: Some(completed),
            database: db,
            initialized: initialized.is_some(),
            figures: files.map(|files| ScanFigures {
                seconds: started.elapsed().as_secs_f64(),
                files,
            }),
            superseded: 0,
            view: seen.map(|o| o.host_view()),
        };
        outbox.send(scan, uid.clone());

        // Sleep for the interval, but wake for a new re-init request for this node.
        let node = opts.node_name.clone();
        wait(&hb, &mut rx, opts.interval, move |fi| {
            ReinitRequests::in_force(fi).is_some_and(|r| r.requested(&node) > completed)
        })
        .await?;
    }
}

/// The Errored result of a cycle in which the daemon refused to scan (`message` says why).
fn refused(opts: &Options, message: String, reinit_id: Option<i64>) -> ScanReport {
    ScanReport {
        owner: opts.owner.clone(),
        node: opts.node_name.clone(),
        condition: ScanCondition::Errored {
            exit: None,
            message,
        },
        reinit_id,
        database: None,
        initialized: false,
        figures: None,
        superseded: 0,
        view: None,
    }
}

/// Whose the node's daemon files are, for this FileIntegrity.
enum Ownership {
    Ours,
    /// Claimed by a FileIntegrity that no longer exists: take them over.
    Gone,
    /// Another FileIntegrity's: the message of the Errored result.
    Held(String),
}

fn me(opts: &Options, uid: &str) -> claim::Owner {
    claim::Owner {
        uid: uid.to_owned(),
        namespace: opts.namespace.clone(),
        name: opts.owner.clone(),
    }
}

async fn own_files(
    fis: &Api<FileIntegrity>,
    opts: &Options,
    uid: &str,
) -> anyhow::Result<Ownership> {
    let (dir, me) = (db_dir(&opts.hostroot), me(opts, uid));
    let claimed = tokio::task::spawn_blocking(move || claim::claim(&dir, &me)).await??;
    let owner = match claimed {
        claim::Claim::Ours => return Ok(Ownership::Ours),
        claim::Claim::Other(None) => return Ok(Ownership::Gone),
        claim::Claim::Other(Some(o)) => o,
    };
    // Only a FileIntegrity of our namespace can be looked up; any other is taken as alive.
    let alive = if owner.namespace == opts.namespace {
        match fis.get_opt(&owner.name).await {
            Ok(Some(fi)) => fi.uid().as_deref() == Some(owner.uid.as_str()),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!("looking up FileIntegrity {}: {e}", owner.name);
                true
            }
        }
    } else {
        true
    };
    Ok(if alive {
        Ownership::Held(format!(
            "the daemon files in /etc/kubernetes belong to FileIntegrity {}/{} ({}): a node is \
             scanned by one FileIntegrity at a time; this one waits until that one is deleted",
            owner.namespace,
            owner.name,
            claim::FILE
        ))
    } else {
        tracing::info!(
            "FileIntegrity {}/{} that owned the files is gone: taking them over with a re-init",
            owner.namespace,
            owner.name
        );
        Ownership::Gone
    })
}

/// Wait up to `timeout`, returning early when the FileIntegrity changes so that `wake` holds;
/// the heartbeat promises the next one within the wait.
async fn wait(
    hb: &liveness::Heartbeat,
    rx: &mut watch::Receiver<Option<Arc<FileIntegrity>>>,
    timeout: Duration,
    wake: impl Fn(&FileIntegrity) -> bool,
) -> anyhow::Result<()> {
    hb.expect_within(timeout + liveness::SLACK);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(()),
            changed = rx.changed() => {
                changed.context("the FileIntegrity watch ended")?;
                if rx.borrow_and_update().as_deref().is_some_and(&wake) {
                    return Ok(());
                }
            }
        }
    }
}

/// The liveness probe of the daemon `opts` describes (run by the kubelet in its container):
/// 0 while its heartbeat is on time, 1 with the reason otherwise.
pub fn probe(opts: &Options) -> std::process::ExitCode {
    let state = std::env::temp_dir().join(state_dir_name(opts));
    match liveness::Heartbeat::in_dir(&state).probe(std::time::SystemTime::now()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The daemon process: confine it (unless `insecure_no_harden`) while it has one thread, then
/// run the daemon on a runtime of its own until SIGTERM/SIGINT. Exits non-zero only when it
/// cannot run at all (the kubelet restarts it), as upstream's FATAL.
pub fn main(opts: Options, insecure_no_harden: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    remove_trigger(
        &upstream_reinit_trigger(&opts.hostroot),
        "upstream's operator",
    );
    let writable = if insecure_no_harden {
        tracing::warn!("--insecure-no-harden: running without confinement");
        Vec::new()
    } else {
        match confine(&opts) {
            Ok(confined) => {
                for step in &confined.report.steps {
                    tracing::info!("hardened: {step}");
                }
                confined.writable
            }
            Err(e) => {
                tracing::error!(
                    "refusing to run unconfined: {e:#} (--insecure-no-harden runs without)"
                );
                return ExitCode::FAILURE;
            }
        }
    };
    let checker = if opts.check_view {
        let checked = fs::canonicalize(&opts.hostroot)
            .map_err(|e| e.to_string())
            .and_then(|root| {
                view::Checker::after_hardening(&root, &writable).map_err(|e| e.to_string())
            });
        match checked {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("reading the daemon's mount table: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        tracing::warn!(
            "--insecure-no-view-check: the view of the host is not compared with the node's"
        );
        None
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(opts, checker) => r,
            _ = shutdown_signal() => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("exit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
