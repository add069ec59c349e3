//! The daemon pod (`fio-operator daemon`): confine the process ([`harden`]), follow its
//! FileIntegrity, read the AIDE configuration through the API, act on re-init requests exactly
//! once, run fio-core's [`runner`](fio_core::runner) and report every scan as the contract's
//! [`ScanReport`] in the result ConfigMap `aide-<fi>-<node>` ([`outbox`]).
//!
//! This file is the I/O loop: it reads (the watched FileIntegrity, the node's files, the
//! configuration), asks [`cycle::next`] what to do, and does it (blocking work off the
//! runtime, results through the outbox).

pub mod claim;
pub mod coverage;
pub mod cycle;
pub mod focused;
pub mod found;
pub mod harden;
pub mod liveness;
pub mod node;
pub mod outbox;
pub mod realtime;
pub mod view;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use fio_api::accept::{AcceptPath, Accepted};
use fio_api::daemon_args::{DaemonArgs, MIN_INTERVAL};
use fio_api::result::{DatabaseId, ScanCondition, ScanFigures, ScanReport};
use fio_api::{aideconf, names, FileChange, FileIntegrity, Holdoff, ReinitRequests, Writer};
use fio_core::atomic::replace_file;
use fio_core::compare::Comparison;
use fio_core::config::LoadOptions;
use fio_core::focus::Focus;
use fio_core::runner::{self, say, NodeScanner, OwnFiles, Verdict};

use cycle::{Init, Ownership, Step};

/// What the daemon runs with: its command line ([`DaemonArgs`]) and its node.
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
    /// Realtime detection ([`realtime`]), and whether it names writers.
    pub realtime: bool,
    pub attribution: bool,
}

impl Options {
    pub fn new(args: &DaemonArgs, node_name: String) -> Options {
        Options {
            owner: args.owner.clone(),
            namespace: args.namespace.clone(),
            config_map: args
                .config_map
                .clone()
                .unwrap_or_else(|| args.owner.clone()),
            hostroot: args.hostroot.clone(),
            interval: Duration::from_secs(args.interval.max(MIN_INTERVAL)),
            max_backups: usize::try_from(args.max_backups).unwrap_or(usize::MAX),
            node_name,
            force_compress: args.compress,
            check_view: !args.insecure_no_view_check,
            realtime: !args.no_realtime,
            attribution: !args.no_attribution,
        }
    }
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
    let wanted = node::db_dir(&host_root);
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

/// The FileIntegrity followed, as its watch last saw it (`None`: not seen yet, or deleted).
type Followed = watch::Receiver<Option<Arc<FileIntegrity>>>;

/// Watch FileIntegrity `name` for as long as the process runs.
fn follow(fis: Api<FileIntegrity>, name: &str) -> Followed {
    let (tx, rx) = watch::channel(None);
    let selector = format!("metadata.name={name}");
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
    rx
}

/// Run until the process is stopped. Errors only when the cluster cannot be reached at all.
pub async fn run(
    opts: Options,
    checker: Option<view::Checker>,
    watcher: Realtime,
) -> anyhow::Result<()> {
    say(runner::LOG_START);
    node::remove_legacy_reinit_trigger(&opts.hostroot);
    let client = client_with_retry().await?;
    let mut daemon = Daemon::new(opts, client, checker, watcher)?;
    daemon.wait_for_static_pod_resources().await?;
    loop {
        daemon.cycle().await?;
    }
}

/// Realtime detection as the process could set it up: `Off` by the spec, or the watcher, or
/// why there is none.
pub enum Realtime {
    Off,
    On(realtime::Watcher),
    Unavailable(String),
}

/// The daemon's I/O: what it reads and writes, and its state between cycles.
struct Daemon {
    opts: Options,
    fis: Api<FileIntegrity>,
    cms: Api<ConfigMap>,
    outbox: outbox::Outbox,
    scanner: NodeScanner,
    checker: Option<view::Checker>,
    hb: liveness::Heartbeat,
    followed: Followed,
    /// Paused by the holdoff annotation in the previous cycle (to say so once).
    paused: bool,
    watcher: Option<realtime::Watcher>,
    /// What the watcher covers (`None`: realtime detection is off by the spec).
    coverage: Option<coverage::Coverage>,
    /// The comparison behind the last verdict, which a focused check starts from; `None`: the
    /// next check is a full scan.
    standing: Option<Comparison>,
    /// How each listed change of the last result was found, by path as listed.
    found: found::Found,
    /// The re-init id this node completed, as the last scan reported it.
    completed: i64,
    /// The acceptance request id this node completed.
    accepted: i64,
    /// The last result sent: its condition and [`sent_digest`] (a focused check that changes
    /// neither sends nothing).
    last_sent: Option<(&'static str, String)>,
    /// Paths the watcher named that no result has listed yet (written while the view was
    /// altered): a later result that lists them says realtime found them, and by whom.
    held: Vec<(String, Vec<Writer>)>,
}

/// The most differences kept for focused checks; with more, every event leads to a full scan
/// (a node that far from its baseline is being re-installed, or needs a re-init).
const MAX_STANDING: usize = 20_000;

fn small(c: &Comparison) -> bool {
    c.added.len() + c.removed.len() + c.changed.len() <= MAX_STANDING
}

/// What the initialisation before a scan did.
struct Initialised {
    /// It failed: the scan's verdict.
    failed: Option<Verdict>,
    /// The database it wrote.
    database: Option<DatabaseId>,
    /// The re-init id the node has completed now.
    completed: i64,
    /// The acceptance completed in this cycle (then `database` is the moved baseline, if any
    /// path moved).
    accepted: Option<Accepted>,
    /// The paths (below the host root) an acceptance moved.
    moved: Vec<Vec<u8>>,
}

impl Daemon {
    fn new(
        opts: Options,
        client: Client,
        checker: Option<view::Checker>,
        realtime: Realtime,
    ) -> anyhow::Result<Daemon> {
        let started = k8s_openapi::jiff::Timestamp::now();
        let (watcher, coverage) = match realtime {
            Realtime::Off => (None, None),
            Realtime::On(w) => {
                let c = coverage::Coverage::new(None, w.unmarked.to_vec(), started);
                (Some(w), Some(c))
            }
            Realtime::Unavailable(why) => (
                None,
                Some(coverage::Coverage::new(Some(why), Vec::new(), started)),
            ),
        };
        let fis: Api<FileIntegrity> = Api::namespaced(client.clone(), &opts.namespace);
        let cms: Api<ConfigMap> = Api::namespaced(client, &opts.namespace);
        let state = state_dir(&opts)?;
        let scanner = NodeScanner {
            config_path: state.join("aide.conf"),
            load: LoadOptions::default(),
            max_backups: opts.max_backups,
            node_name: opts.node_name.clone(),
            own: Some(OwnFiles::in_dir(&node::db_dir(&opts.hostroot))),
            node_root: Some(opts.hostroot.clone()),
        };
        let hb = liveness::Heartbeat::in_dir(&state);
        hb.expect_within(liveness::SLACK);
        Ok(Daemon {
            followed: follow(fis.clone(), &opts.owner),
            outbox: outbox::Outbox::start(cms.clone(), opts.namespace.clone()),
            opts,
            fis,
            cms,
            scanner,
            checker,
            hb,
            paused: false,
            watcher,
            coverage,
            standing: None,
            found: found::Found::new(),
            completed: 0,
            accepted: 0,
            last_sent: None,
            held: Vec::new(),
        })
    }

    /// One cycle: read, decide, act, until a wait or a result ends it.
    async fn cycle(&mut self) -> anyhow::Result<()> {
        let Some(fi) = self.followed.borrow_and_update().clone() else {
            return self.wait(Duration::from_secs(60), |_| true).await;
        };
        let mut read = None;
        loop {
            match cycle::next(&fi, &self.opts.node_name, read.as_ref()) {
                Step::Pause => return self.pause().await,
                Step::Read => read = Some(self.read(&fi).await?),
                Step::Refuse(message) => return self.refuse(&fi, message, None).await,
                Step::AwaitConfig => {
                    tracing::info!(
                        "waiting for the AIDE configuration {}",
                        self.opts.config_map
                    );
                    return self.wait(Duration::from_secs(2), |_| false).await;
                }
                Step::AwaitRequestedConfig { wanted } => {
                    tracing::info!("re-init request {wanted}: waiting for its configuration");
                    return self.wait(Duration::from_secs(1), |_| false).await;
                }
                Step::Scan(scan) => {
                    let config = read.map(|r| r.config).unwrap_or_default();
                    return self.scan(&fi, scan, config).await;
                }
            }
        }
    }

    /// Paused while the node is updated: no scan, no re-init until the annotation is lifted.
    /// The watcher goes on naming writers: the first scan after the pause lists what the
    /// update changed with who wrote it, which the operator's window judges (issue 28).
    async fn pause(&mut self) -> anyhow::Result<()> {
        let node = self.opts.node_name.clone();
        // What the update writes is re-measured by a full scan after the pause, never by a
        // check focused elsewhere (one after an acceptance).
        self.standing = None;
        if !std::mem::replace(&mut self.paused, true) {
            say(&format!(
                "holding off scans on node {node}: paused by annotation {}",
                names::HOLDOFF_ANNOTATION
            ));
        }
        self.hold_while_paused(self.opts.interval, move |fi| !Holdoff::of(fi).holds(&node))
            .await
    }

    /// The node's files (claiming them) and the configuration.
    async fn read(&mut self, fi: &FileIntegrity) -> anyhow::Result<cycle::Read> {
        if std::mem::take(&mut self.paused) {
            say(&format!("scans resumed on node {}", self.opts.node_name));
        }
        if let Err(e) = ReinitRequests::of(fi) {
            tracing::warn!("{e}; using the copy in the status");
        }
        let uid = fi.uid().unwrap_or_default();
        let ownership = self.ownership(&uid).await?;
        let (root, u) = (self.opts.hostroot.clone(), uid.clone());
        let (completed, accepted) = tokio::task::spawn_blocking(move || {
            (
                node::read_completed(&root, &u, node::Request::Reinit),
                node::read_completed(&root, &u, node::Request::Accept),
            )
        })
        .await?;
        let config = match self.cms.get_opt(&self.opts.config_map).await {
            Ok(Some(cm)) => cm
                .data
                .and_then(|mut d| d.remove(names::DEFAULT_CONFIG_DATA_KEY))
                .unwrap_or_default(),
            Ok(None) => String::new(),
            Err(e) => {
                tracing::warn!("reading ConfigMap {}: {e}", self.opts.config_map);
                String::new()
            }
        };
        Ok(cycle::Read {
            ownership,
            completed,
            accepted,
            config,
        })
    }

    fn me(&self, uid: &str) -> claim::Owner {
        claim::Owner {
            uid: uid.to_owned(),
            namespace: self.opts.namespace.clone(),
            name: self.opts.owner.clone(),
        }
    }

    /// Claim the node's files, or learn whose they are (alive or gone, through the API).
    async fn ownership(&self, uid: &str) -> anyhow::Result<Ownership> {
        let (dir, me) = (node::db_dir(&self.opts.hostroot), self.me(uid));
        let claimed = tokio::task::spawn_blocking(move || claim::claim(&dir, &me)).await??;
        let owner = match claimed {
            claim::Claim::Ours => return Ok(Ownership::Ours),
            claim::Claim::Other(None) => return Ok(Ownership::Gone),
            claim::Claim::Other(Some(o)) => o,
        };
        // Only a FileIntegrity of our namespace can be looked up; any other is taken as alive.
        let alive = owner.namespace != self.opts.namespace
            || match self.fis.get_opt(&owner.name).await {
                Ok(Some(fi)) => fi.uid().as_deref() == Some(owner.uid.as_str()),
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!("looking up FileIntegrity {}: {e}", owner.name);
                    true
                }
            };
        if !alive {
            tracing::info!(
                "FileIntegrity {}/{} that owned the files is gone: taking them over with a \
                 re-init",
                owner.namespace,
                owner.name
            );
            return Ok(Ownership::Gone);
        }
        Ok(Ownership::Held(format!(
            "the daemon files in /etc/kubernetes belong to FileIntegrity {}/{} ({}): a node is \
             scanned by one FileIntegrity at a time; this one waits until that one is deleted",
            owner.namespace,
            owner.name,
            claim::FILE
        )))
    }

    /// Report an Errored result saying why the daemon does not scan, then wait an interval.
    async fn refuse(
        &mut self,
        fi: &FileIntegrity,
        message: String,
        reinit_id: Option<i64>,
    ) -> anyhow::Result<()> {
        say(&format!("node {}: {message}", self.opts.node_name));
        let result = cycle::refused(fi, &self.opts.node_name, message, reinit_id);
        self.outbox.send(result, fi.uid().unwrap_or_default());
        self.wait(self.opts.interval, |_| false).await
    }

    /// Write the configuration where the scanner reads it, mapped to the host root.
    async fn write_config(&self, text: String) -> anyhow::Result<()> {
        let local = if self.opts.hostroot == Path::new(aideconf::HOSTROOT) {
            text
        } else {
            aideconf::map_hostroot(&text, &self.opts.hostroot)
        };
        let path = self.scanner.config_path.clone();
        tokio::task::spawn_blocking(move || replace_file(&path, local.as_bytes(), 0o600))
            .await?
            .with_context(|| format!("writing {}", self.scanner.config_path.display()))
    }

    /// Initialise (as [`Init`] says), scan, report, and wait for the next cycle.
    async fn scan(
        &mut self,
        fi: &FileIntegrity,
        scan: cycle::Scan,
        config: String,
    ) -> anyhow::Result<()> {
        self.write_config(config).await?;
        // A scan that never ends (a read that never returns) fails the liveness probe.
        self.hb.expect_within(liveness::MAX_SCAN);
        // What the scan (or an initialisation) would read must be what the node shows: no
        // baseline is taken, no verdict given, through an altered view.
        if let Err(message) = observe(&self.checker).await? {
            say(&format!("node {}: {message}", self.opts.node_name));
            let result = cycle::refused(fi, &self.opts.node_name, message, Some(scan.completed));
            self.outbox.send(result, fi.uid().unwrap_or_default());
            // What the watcher names meanwhile is reported with the view (see [`focused`]).
            return self.watch(fi, self.opts.interval, |_| false).await;
        }
        let uid = fi.uid().unwrap_or_default();
        // An acceptance moves a few entries of the baseline the last comparison was made
        // against: only those are measured again (a focused check, seconds on any node), and
        // what the watcher saw meanwhile stays for the checks after it. Anything else (or no
        // comparison to start from) is a full scan, which looks at everything the watcher saw.
        let after_accept = matches!(scan.init, Init::Accept { .. }) && self.standing.is_some();
        if !after_accept {
            if let Some(w) = &self.watcher {
                w.clear();
            }
        }
        let init = self.initialise(&uid, &scan).await?;
        let started = Instant::now();
        let standing = self.standing.take().filter(|_| after_accept);
        let (verdict, database, files, comparison) = self.check(&init, standing).await?;
        let node = self.opts.node_name.clone();
        // A baseline moved for some paths keeps how the other changes were found.
        if init.database.is_some() && init.accepted.is_none() {
            self.found.clear();
        }
        self.standing = comparison.filter(small);
        self.completed = init.completed;
        if let Some(a) = &init.accepted {
            self.accepted = a.id;
        }
        if !after_accept {
            self.rewatch().await?;
        }
        let moved = init.database.is_some();
        if !cycle::keeps_result(self.followed.borrow().as_deref(), &node, moved) {
            say(&format!(
                "scan result for node {node} discarded: scans were paused while it ran"
            ));
            return Ok(());
        }
        let figures = files.map(|files| ScanFigures {
            seconds: started.elapsed().as_secs_f64(),
            files,
        });
        // (a focused check reports as the watcher's do: it is no scan of everything)
        let focused: &[(String, Vec<Writer>)] = &[];
        self.report(
            fi,
            verdict,
            database,
            figures,
            &init,
            after_accept.then_some(focused),
        )
        .await?;
        // Sleep for the interval, but wake for a new re-init or acceptance request for this
        // node, or a pause; check what the watcher reports meanwhile.
        let (completed, accepted) = (init.completed, self.accepted);
        self.watch(fi, self.opts.interval, move |fi| {
            cycle::wakes_early(fi, &node, completed, accepted)
        })
        .await
    }

    /// The initialisation [`Init`] asks for, recording a completed re-init.
    async fn initialise(&self, uid: &str, scan: &cycle::Scan) -> anyhow::Result<Initialised> {
        let mut done = Initialised {
            failed: None,
            database: None,
            completed: scan.completed,
            accepted: None,
            moved: Vec::new(),
        };
        let mut s = self.scanner.clone();
        let reinit = match &scan.init {
            Init::IfMissing => {
                // Loading the configuration may read includes and run programs: off the
                // runtime.
                let s = s.clone();
                if !tokio::task::spawn_blocking(move || s.needs_init()).await? {
                    return Ok(done);
                }
                None
            }
            Init::Reinit {
                id,
                take_over,
                keep_every_backup,
            } => {
                if *keep_every_backup {
                    s.max_backups = usize::MAX;
                }
                Some((*id, *take_over))
            }
            Init::Accept { id, paths } => return self.accept(uid, *id, paths, done).await,
        };
        node::remove_legacy_reinit_trigger(&self.opts.hostroot);
        let is_reinit = reinit.is_some();
        let database = match tokio::task::spawn_blocking(move || s.init(is_reinit)).await? {
            Ok(db) => db,
            Err(verdict) => {
                done.failed = Some(verdict);
                return Ok(done);
            }
        };
        if let Some((id, take_over)) = reinit {
            if let Err(e) = self.record_reinit(uid, id, take_over).await? {
                done.failed = Some(Verdict::Errored {
                    exit: None,
                    message: format!(
                        "recording re-init {id} in {}: {e}",
                        node::reinit_id_path(&self.opts.hostroot).display()
                    ),
                });
                return Ok(done);
            }
            done.completed = id;
        }
        done.database = Some(database);
        Ok(done)
    }

    /// Move the baseline for the paths of acceptance `id` whose change is still the one
    /// accepted (its fingerprint), and record the request as completed (also when no path was
    /// left to move: the operator learns it from the result's `accepted`).
    async fn accept(
        &self,
        uid: &str,
        id: i64,
        paths: &[AcceptPath],
        mut done: Initialised,
    ) -> anyhow::Result<Initialised> {
        let root = self.opts.hostroot.as_os_str().as_encoded_bytes().to_vec();
        let names: Vec<Vec<u8>> = paths
            .iter()
            .map(|p| {
                let mut n = root.clone();
                n.extend(fio_core::changes::unescape_path(&p.path));
                n
            })
            .collect();
        let wanted: Vec<(String, String)> = paths
            .iter()
            .map(|p| (p.path.clone(), p.change.clone()))
            .collect();
        say(&format!(
            "accepting request {id} on node {}: {} path(s)",
            self.opts.node_name,
            paths.len()
        ));
        let s = self.scanner.clone();
        let moved = tokio::task::spawn_blocking(move || {
            s.accept(&names, &|c| {
                let listed = FileChange::from(c);
                let print = fio_api::accept::fingerprint(&listed);
                wanted.iter().any(|(p, f)| *p == listed.path && *f == print)
            })
        })
        .await?;
        let (database, moved) = match moved {
            Ok(m) => m,
            Err(verdict) => {
                done.failed = Some(verdict);
                return Ok(done);
            }
        };
        let (r, u) = (self.opts.hostroot.clone(), uid.to_owned());
        let recorded = tokio::task::spawn_blocking(move || {
            node::record_completed(&r, &u, node::Request::Accept, id)
        })
        .await?;
        if let Err(e) = recorded {
            done.failed = Some(Verdict::Errored {
                exit: None,
                message: format!(
                    "recording acceptance {id} in {}: {e}",
                    node::completed_path(&self.opts.hostroot, node::Request::Accept).display()
                ),
            });
            return Ok(done);
        }
        let shown: Vec<String> = moved
            .iter()
            .map(|n| fio_core::changes::escape_path(fio_core::changes::on_node(n, &root)))
            .collect();
        say(&format!(
            "accepted request {id} on node {}: {} of {} path(s) moved",
            self.opts.node_name,
            shown.len(),
            paths.len()
        ));
        done.database = database;
        done.accepted = Some(Accepted { id, paths: shown });
        done.moved = moved;
        Ok(done)
    }

    /// Record re-init `id` as completed, and claim the files after a take-over.
    async fn record_reinit(
        &self,
        uid: &str,
        id: i64,
        take_over: bool,
    ) -> anyhow::Result<std::io::Result<()>> {
        let (root, u, me) = (self.opts.hostroot.clone(), uid.to_owned(), self.me(uid));
        Ok(tokio::task::spawn_blocking(move || {
            node::record_completed(&root, &u, node::Request::Reinit, id)?;
            if take_over {
                claim::take_over(&node::db_dir(&root), &me).map_err(std::io::Error::other)?;
            }
            Ok(())
        })
        .await?)
    }

    /// The check after `init`: its verdict, the database it read, the files it examined. A
    /// full scan, or with `standing` (the comparison with the baseline before an acceptance)
    /// a check focused on the paths the acceptance moved, the rest as it stood (every other
    /// entry is byte-identical, see [`fio_core::runner::NodeScanner::accept`]).
    async fn check(
        &self,
        init: &Initialised,
        standing: Option<Comparison>,
    ) -> anyhow::Result<(Verdict, Option<DatabaseId>, Option<u64>, Option<Comparison>)> {
        if let Some(failed) = &init.failed {
            return Ok((failed.clone(), None, None, None));
        }
        let s = self.scanner.clone();
        let fresh = init.database.clone();
        let moved = Arc::new(Focus::new(init.moved.iter().cloned()));
        Ok(tokio::task::spawn_blocking(move || {
            // The result names the database by the bytes the check read (sealed); the
            // operator judges it against the node's anchor, which the daemon cannot read (it
            // reads no node status: see deploy/rbac/daemon_role.yaml).
            let c = match standing {
                Some(standing) => s.check_focused(moved, standing, &|_| Ok(())),
                None => s.check_sealed(&|_| Ok(())),
            };
            // Right after an initialisation its figures (entries) are the richer ones.
            let db = match (fresh, c.database) {
                (Some(f), Some(d)) if f.sha256 == d.sha256 => Some(f),
                (_, Some(d)) => Some(d),
                (f, None) => f,
            };
            (c.verdict, db, c.files, c.comparison)
        })
        .await?)
    }

    /// Send the scan's result, its verdict Errored if the view was altered while it ran.
    async fn report(
        &mut self,
        fi: &FileIntegrity,
        mut verdict: Verdict,
        database: Option<DatabaseId>,
        figures: Option<ScanFigures>,
        init: &Initialised,
        realtime: Option<&[(String, Vec<Writer>)]>,
    ) -> anyhow::Result<()> {
        let node = &self.opts.node_name;
        // Checked again after the scan: a mount made while it ran.
        let seen = match observe(&self.checker).await? {
            Ok(seen) => seen,
            // (an Errored verdict already says so, with more)
            Err(_) if matches!(verdict, Verdict::Errored { .. }) => None,
            Err(message) => {
                verdict = Verdict::Errored {
                    exit: None,
                    message,
                };
                None
            }
        };
        let by = if realtime.is_some() {
            "realtime check"
        } else {
            "scan"
        };
        say(&format!(
            "{by} result for node {node}: {}",
            verdict.condition()
        ));
        self.last_sent = Some((verdict.condition(), sent_digest(&verdict)));
        let checked = matches!(verdict, Verdict::Succeeded | Verdict::Failed { .. });
        if let Some(c) = self
            .coverage
            .as_mut()
            .filter(|_| realtime.is_none() && checked)
        {
            c.scanned(k8s_openapi::jiff::Timestamp::now());
        }
        let mut condition = ScanCondition::from_verdict(&verdict, node, self.opts.force_compress);
        if let ScanCondition::Failed {
            changes: Some(c), ..
        } = &mut condition
        {
            let named: Vec<_> = realtime
                .unwrap_or_default()
                .iter()
                .chain(&self.held)
                .cloned()
                .collect();
            found::mark(&mut self.found, &mut c.summary.listed, Some(&named));
        }
        // Nothing listed any more (back at the baseline, or moved into it): a later change of
        // a path is a new change, found anew, its writers its own.
        if matches!(condition, ScanCondition::Succeeded) {
            self.found.clear();
        }
        if checked {
            self.held.clear();
        }
        let result = ScanReport {
            owner: self.opts.owner.clone(),
            node: node.clone(),
            condition,
            reinit_id: Some(init.completed),
            database,
            initialized: init.database.is_some() && init.accepted.is_none(),
            figures,
            superseded: 0,
            view: seen.map(|o| o.host_view()),
            realtime: self.coverage.as_ref().map(coverage::Coverage::report),
            accepted: init.accepted.clone(),
        };
        self.outbox.send(result, fi.uid().unwrap_or_default());
        Ok(())
    }

    /// Before the first baseline of a booting OpenShift node: wait for
    /// [`node::STATIC_POD_RESOURCES`], at most [`node::BOOT_WAIT`], saying so (a look at two
    /// paths every [`node::BOOT_POLL`], nothing else).
    async fn wait_for_static_pod_resources(&mut self) -> anyhow::Result<()> {
        let root = self.opts.hostroot.clone();
        let booting = || {
            let root = root.clone();
            tokio::task::spawn_blocking(move || node::booting_openshift_node(&root))
        };
        if !booting().await? {
            return Ok(());
        }
        let (node, path, limit) = (
            self.opts.node_name.clone(),
            node::STATIC_POD_RESOURCES,
            node::BOOT_WAIT,
        );
        say(&format!(
            "node {node}: waiting up to {limit:?} for /{path} before taking the first baseline \
             (an OpenShift node creates it during its first boot; a baseline taken before fails \
             at the next scan: OCPBUGS-36483)"
        ));
        let since = Instant::now();
        while booting().await? {
            if since.elapsed() >= limit {
                say(&format!(
                    "node {node}: /{path} still missing after {limit:?}: taking the first \
                     baseline without it"
                ));
                return Ok(());
            }
            self.wait(node::BOOT_POLL, |_| false).await?;
        }
        say(&format!(
            "node {node}: /{path} is there: taking the first baseline"
        ));
        Ok(())
    }

    /// Wait up to `timeout`, returning early when the FileIntegrity changes so that `wake`
    /// holds; the heartbeat promises the next one within the wait.
    async fn wait(
        &mut self,
        timeout: Duration,
        wake: impl Fn(&FileIntegrity) -> bool,
    ) -> anyhow::Result<()> {
        self.hb.expect_within(timeout + liveness::SLACK);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                changed = self.followed.changed() => {
                    changed.context("the FileIntegrity watch ended")?;
                    if self.followed.borrow_and_update().as_deref().is_some_and(&wake) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// What tells two results of one condition apart: a Failed verdict's change digest, an Errored
/// one's message.
fn sent_digest(v: &Verdict) -> String {
    match v {
        Verdict::Failed { changes, .. } => changes.sha256.clone(),
        Verdict::Errored { message, .. } => message.clone(),
        _ => String::new(),
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
    node::remove_upstream_reinit_trigger(&opts.hostroot);
    // While the process still has CAP_SYS_ADMIN: the only moment the marks can be taken.
    let prepared = opts.realtime.then(|| {
        let p = realtime::prepare(&opts.hostroot);
        match &p {
            Ok(p) => p
                .unmarked
                .iter()
                .for_each(|u| tracing::warn!("realtime: {u}")),
            Err(e) => tracing::warn!("realtime detection unavailable: {e}; scans go on"),
        }
        p
    });
    let checker = match confine_or_not(&opts, insecure_no_harden).and_then(|writable| {
        checker(&opts, &writable).map_err(|e| format!("reading the daemon's mount table: {e}"))
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
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
    let watcher = match prepared {
        None => Realtime::Off,
        Some(Err(why)) => Realtime::Unavailable(why),
        Some(Ok(p)) => match realtime::Watcher::start(p, &opts.hostroot, opts.attribution) {
            Ok(w) => Realtime::On(w),
            Err(e) => Realtime::Unavailable(format!("starting the watcher's thread: {e}")),
        },
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(opts, checker, watcher) => r,
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

/// Confine the process unless told not to; the directories left writable.
fn confine_or_not(opts: &Options, insecure_no_harden: bool) -> Result<Vec<PathBuf>, String> {
    if insecure_no_harden {
        tracing::warn!("--insecure-no-harden: running without confinement");
        return Ok(Vec::new());
    }
    let confined = confine(opts).map_err(|e| {
        format!("refusing to run unconfined: {e:#} (--insecure-no-harden runs without)")
    })?;
    for step in &confined.report.steps {
        tracing::info!("hardened: {step}");
    }
    Ok(confined.writable)
}

/// The view check, unless `--insecure-no-view-check`.
fn checker(opts: &Options, writable: &[PathBuf]) -> Result<Option<view::Checker>, String> {
    if !opts.check_view {
        tracing::warn!(
            "--insecure-no-view-check: the view of the host is not compared with the node's"
        );
        return Ok(None);
    }
    let root = fs::canonicalize(&opts.hostroot).map_err(|e| e.to_string())?;
    view::Checker::after_hardening(&root, writable)
        .map(Some)
        .map_err(|e| e.to_string())
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
