//! The processes of a test: [`Operator`] (`fio-operator run`) and [`Daemon`]
//! (`fio-operator daemon`), local processes authenticated as their service accounts, registered
//! with their [`TestNs`] (exit checks, log tails on failure) and killed when dropped.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fio_api::daemon_args::DaemonArgs;
use fio_api::names;

use super::{Identity, PodFollower, TestNs, TEST_IMAGE};

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return format!("(no {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---- Processes ----------------------------------------------------------------------------------

pub(super) struct ProcInner {
    pub(super) name: String,
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    pub(super) log: PathBuf,
    pub(super) child: Option<Child>,
    /// Whether an exit is a failure (cleared by stop/kill/allow_exit).
    pub(super) expect_running: bool,
    starts: u32,
}

impl ProcInner {
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.name);
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        self.starts += 1;
        let _ = writeln!(
            log,
            "==== [cluster harness] start #{} of {}: {} {} ====",
            self.starts,
            self.name,
            self.program.display(),
            self.args.join(" ")
        );
        let err = log.try_clone().expect("clone log file handle");
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_remove("KUBECONFIG")
            .env_remove("WATCH_NAMESPACE")
            .env_remove("NODE_NAME")
            .env_remove("FIO_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe. The process dies with the thread that started it,
        // so an aborted test run leaves nothing behind.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {} ({}): {e}", self.name, self.program.display()));
        self.child = Some(child);
        self.expect_running = true;
    }

    fn signal_and_reap(&mut self, sig: libc::c_int, grace: Duration) {
        self.expect_running = false;
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // SAFETY: the pid is our unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub(super) fn kill(&mut self) {
        self.signal_and_reap(libc::SIGKILL, Duration::from_secs(5));
    }

    fn stop(&mut self) {
        self.signal_and_reap(libc::SIGTERM, Duration::from_secs(10));
    }
}

/// A process of the test; shared with the [`TestNs`] registry (exit checks, logs on failure).
struct Proc(Arc<Mutex<ProcInner>>);

impl Proc {
    fn new(
        t: &TestNs,
        name: String,
        program: &Path,
        args: Vec<String>,
        envs: Vec<(String, String)>,
    ) -> Proc {
        let log_dir = t.dir.join("logs");
        fs::create_dir_all(&log_dir).expect("create the log directory");
        let log = log_dir.join(format!("{name}.log"));
        let inner = Arc::new(Mutex::new(ProcInner {
            name,
            program: PathBuf::from(program),
            args,
            envs,
            log,
            child: None,
            expect_running: false,
            starts: 0,
        }));
        t.register(&inner);
        let p = Proc(inner);
        p.lock().spawn();
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProcInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log_path(&self) -> PathBuf {
        self.lock().log.clone()
    }

    fn pid(&self) -> Option<u32> {
        self.lock().child.as_ref().map(Child::id)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.lock().stop();
    }
}

/// The operator's `--max-pause` in the tests.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);

/// `fio-operator run` as the operator's service account, watching the test namespace, with its
/// metrics in plain HTTP on a loopback port of its own.
/// The process, its HTTPS metrics address and its plain-HTTP one.
pub struct Operator(Proc, std::net::SocketAddr, std::net::SocketAddr);

impl Operator {
    /// Starts `fio-operator run` with `WATCH_NAMESPACE=<ns>`, the operator's token kubeconfig,
    /// `RELATED_IMAGE_OPERATOR=`[`TEST_IMAGE`] and `FIO_LOG=debug`; output in
    /// `<test dir>/logs/operator.log`.
    pub fn start(t: &TestNs) -> Operator {
        Operator::start_named(t, "operator")
    }

    /// [`Operator::start`] with its own process name and log (`<name>.log`): a second replica.
    pub fn start_named(t: &TestNs, name: &str) -> Operator {
        Operator::start_serving(t, name, &t.dir.join("no-serving-cert"))
    }

    /// [`Operator::start_named`] with `tls.crt`/`tls.key` looked for in `cert_dir` (none there:
    /// HTTPS waits for them; plain-HTTP `/metrics` is served either way).
    pub fn start_serving(t: &TestNs, name: &str, cert_dir: &Path) -> Operator {
        Operator::spawn(t, name, cert_dir, TEST_IMAGE)
    }

    /// [`Operator::start_named`] of another version: its daemons run `image` (an upgrade).
    pub fn start_image(t: &TestNs, name: &str, image: &str) -> Operator {
        Operator::spawn(t, name, &t.dir.join("no-serving-cert"), image)
    }

    fn spawn(t: &TestNs, name: &str, cert_dir: &Path, image: &str) -> Operator {
        let envs = vec![
            ("WATCH_NAMESPACE".into(), t.ns.clone()),
            (
                "KUBECONFIG".into(),
                t.kubeconfig(Identity::Operator).display().to_string(),
            ),
            ("RELATED_IMAGE_OPERATOR".into(), image.into()),
            (
                "FIO_LOG".into(),
                std::env::var("FIO_TEST_OPERATOR_LOG").unwrap_or_else(|_| "debug".into()),
            ),
            ("OPERATOR_NAME".into(), names::OPERATOR_NAME.into()),
        ];
        // Ports free now; the operator binds them again after a restart (SO_REUSEADDR).
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port for the metrics")
        };
        let (metrics, plain) = (free(), free());
        let args = vec![
            "run".into(),
            format!("--metrics-addr={metrics}"),
            format!("--metrics-plain-addr={plain}"),
            format!("--serving-cert-dir={}", cert_dir.display()),
            // Short, so a node left paused is reported within a test.
            format!("--max-pause={}", MAX_PAUSE.as_secs()),
        ];
        Operator(
            Proc::new(t, name.into(), &super::bin("fio-operator"), args, envs),
            metrics,
            plain,
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }

    /// Where the HTTPS metrics endpoint listens.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.1
    }

    /// The metrics' text (plain-HTTP `GET /metrics`), retried until the operator answers.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let mut s = tokio::net::TcpStream::connect(self.2).await?;
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
                    .await?;
                let mut out = String::new();
                s.read_to_string(&mut out).await?;
                Ok::<_, std::io::Error>(out)
            };
            match attempt.await {
                Ok(resp) if resp.starts_with("HTTP/1.1 200") => {
                    return resp
                        .split_once("\r\n\r\n")
                        .map(|(_, body)| body.to_owned())
                        .unwrap_or_default();
                }
                r if Instant::now() >= deadline => {
                    panic!("metrics endpoint {} did not answer: {r:?}", self.2)
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Wait until the metric `name` with exactly `labels` has the value `want`.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.metrics().await;
            let got = fio_operator::metrics::sample(&text, name, labels);
            if got == Some(want) {
                return text;
            }
            if Instant::now() >= deadline {
                panic!("metric {name}{labels:?}: want {want}, got {got:?}\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A crash and a restart: SIGKILL, then the same command again (log appended).
    pub fn restart(&mut self) {
        let mut p = self.0.lock();
        p.kill();
        p.spawn();
    }

    /// SIGKILL (a crash); [`Operator::start_again`] brings it back.
    pub fn kill(&mut self) {
        self.0.lock().kill();
    }

    /// Starts it again after [`Operator::kill`].
    pub fn start_again(&mut self) {
        self.0.lock().spawn();
    }

    pub fn log_path(&self) -> PathBuf {
        self.0.log_path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// `fio-operator daemon --owner=<fi>` for one simulated node, as the daemon's service account
/// with a token bound to the DaemonSet's pod on that node, as a kubelet would run it: when the
/// pod is replaced (a DaemonSet roll-out), the daemon is restarted with a token of the new pod.
pub struct Daemon {
    proc: Proc,
    pub node: String,
    pub root: PathBuf,
    kubeconfig: PathBuf,
    follower: tokio::task::JoinHandle<()>,
}

impl Daemon {
    /// Waits for the pod of DaemonSet `aide-<fi>` on `node`, then starts `fio-operator daemon
    /// --owner=<fi> --namespace=<ns> --hostroot=<root> --interval=<secs>` (no view check) with
    /// `NODE_NAME=<node>` and a kubeconfig whose token is bound to that pod; output in
    /// `<test dir>/logs/daemon-<node>.log` (`daemon-<fi>-<node>.log` for a second FileIntegrity).
    pub async fn start(
        t: &TestNs,
        fi: &str,
        node: &str,
        root: &Path,
        interval_secs: u64,
    ) -> Daemon {
        let ds = names::daemonset_name(fi);
        let pod = t
            .daemon_pod(&ds, node, Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("no pod of DaemonSet {ds} on node {node} within 60 s"));
        // The scenarios' FileIntegrity keeps the short names; another one's daemons get theirs.
        let label = if fi == "example-fileintegrity" {
            format!("daemon-{node}")
        } else {
            format!("daemon-{fi}-{node}")
        };
        let kubeconfig = t.dir.join(format!("{label}.kubeconfig"));
        t.write_pod_kubeconfig(&kubeconfig, &pod).await;
        let mut envs = vec![
            ("NODE_NAME".into(), node.to_owned()),
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
        ];
        if let Ok(level) = std::env::var("FIO_TEST_DAEMON_LOG") {
            envs.push(("FIO_LOG".into(), level));
        }
        let args = DaemonArgs {
            hostroot: root.to_owned(),
            interval: interval_secs,
            // A simulated node's root is a directory of this machine: no kubelet has it as
            // its root (the real-node tests check the view).
            insecure_no_view_check: true,
            // Simulated nodes share this machine's filesystem: a watcher each would see every
            // write of the machine (the real-node tests check realtime detection).
            no_realtime: true,
            ..DaemonArgs::new(fi, &t.ns)
        }
        .to_argv();
        let proc = Proc::new(t, label, &super::bin("fio-operator"), args, envs);
        let follower = tokio::spawn(follow_pod(
            t.follower(),
            ds,
            node.to_owned(),
            pod.metadata.uid.unwrap_or_default(),
            kubeconfig.clone(),
            proc.0.clone(),
        ));
        Daemon {
            proc,
            node: node.to_owned(),
            root: root.to_path_buf(),
            kubeconfig,
            follower,
        }
    }

    /// Its kubeconfig: the daemon service account, token bound to its pod on its node.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s), like a deleted pod.
    pub fn stop(&mut self) {
        self.proc.lock().stop();
    }

    /// SIGKILL (a crashed pod or node).
    pub fn kill(&mut self) {
        self.proc.lock().kill();
    }

    /// Starts it again after stop/kill (log appended).
    pub fn start_again(&mut self) {
        self.proc.lock().spawn();
    }

    /// Its exit is no longer a test failure (e.g. after its FileIntegrity was deleted).
    pub fn allow_exit(&mut self) {
        self.proc.lock().expect_running = false;
    }

    pub fn log_path(&self) -> PathBuf {
        self.proc.log_path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// `<root>/etc/kubernetes`, where the database, log and backups are.
    pub fn db_dir(&self) -> PathBuf {
        self.root.join("etc/kubernetes")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// The kubelet's part: when the daemon's pod on `node` is replaced, restart the daemon (if it
/// runs) with a token bound to the new pod.
/// Runs `job` on one thread that lives as long as the test binary, and waits for it. A process
/// dies with the thread that started it (PR_SET_PDEATHSIG), and the runtime's blocking threads
/// exit when idle: a daemon restarted from one of them was killed some seconds later.
fn on_spawner_thread(job: Box<dyn FnOnce() + Send>) {
    type Job = (Box<dyn FnOnce() + Send>, std::sync::mpsc::Sender<()>);
    static SPAWNER: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (job, done) in rx {
                job();
                let _ = done.send(());
            }
        });
        Mutex::new(tx)
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let sent = tx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((job, done_tx));
    if sent.is_ok() {
        let _ = done_rx.recv();
    }
}

async fn follow_pod(
    f: PodFollower,
    ds: String,
    node: String,
    mut uid: String,
    kubeconfig: PathBuf,
    proc: Arc<Mutex<ProcInner>>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(pod) = f.pod(&ds, &node).await else {
            continue;
        };
        let new = pod.metadata.uid.clone().unwrap_or_default();
        if new == uid {
            continue;
        }
        if !f.write_kubeconfig(&kubeconfig, &pod).await {
            continue;
        }
        uid = new;
        let proc = proc.clone();
        let _ = tokio::task::spawn_blocking(move || {
            on_spawner_thread(Box::new(move || {
                let mut p = proc.lock().unwrap_or_else(|p| p.into_inner());
                if p.child.is_some() && p.expect_running {
                    p.stop();
                    p.spawn();
                }
            }))
        })
        .await;
    }
}
