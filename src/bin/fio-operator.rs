//! `fio-operator`: the File Integrity Operator binary.
//!
//! Subcommands:
//! - `run`: the operator.
//! - `daemon --owner=FI --namespace=NS ...`: the daemon of a FileIntegrity's DaemonSet pods
//!   (upstream's binary also carries both: `file-integrity-operator daemon`).
//! - `kubectl-fio ...`, or the binary run under the name `kubectl-fio` (a link in `PATH`): the
//!   kubectl plugin, `kubectl fio changes|report` (`fio_operator::kubectl`).
//! - `crds [--out DIR]`: print both CustomResourceDefinitions as multi-document YAML, or write
//!   `DIR/<group>_<plural>.yaml` (how `deploy/crds/` is generated:
//!   `cargo run --bin fio-operator -- crds --out deploy/crds`).
//!
//! Exit codes: 0 success, 1 failure, 2 usage error.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;
use std::time::Duration;

use fio_api as api;
use fio_operator::metrics::{Limits, Metrics, Reviewer, ServeOptions};

const USAGE: &str = "\
Usage: fio-operator <COMMAND>

Commands:
  run                Run the operator: watches FileIntegrity objects in $WATCH_NAMESPACE
                     (default: the namespace of its service account); in-cluster config
                     or $KUBECONFIG; logs filtered by $FIO_LOG (default info)
      --metrics-addr ADDR      Serve HTTPS metrics (/metrics-fio, /metrics; a bearer
                               token allowed `get` on the path is required) and /healthz
                               here [default: 0.0.0.0:8585]
      --metrics-plain-addr ADDR|none
                               Serve plain-HTTP /metrics and /healthz here, open (as
                               upstream's port 8383) [default: 0.0.0.0:8383]
      --serving-cert-dir DIR   tls.crt and tls.key for HTTPS; if absent at start, HTTPS
                               starts when they appear [default: /var/run/secrets/serving-cert]
      --max-pause SECS         Report a node paused for a MachineConfig update longer
                               than this (Event, metric) [default: 3600]
      --trust-node-annotations Without the MachineConfigPool API, re-initialise a node
                               when its own machine-config annotations say its update
                               is over (upstream's behaviour: root on that node can then
                               move its own baseline) [default: resume without re-init]
  daemon             The daemon of a FileIntegrity's DaemonSet pod: config from the
                     ConfigMap <owner>, results as ConfigMaps, re-init requests;
                     env NODE_NAME, in-cluster config or $KUBECONFIG
      --owner FI               The FileIntegrity this daemon scans for (required)
      --namespace NS           Its namespace (required)
      --hostroot DIR           Where the node's root filesystem is [default: /hostroot]
      --config-map CM          The ConfigMap with aide.conf [default: the owner's name]
      --interval SECS          Seconds between checks [default: 900, minimum 10]
      --max-backups N          Backups kept by a re-init [default: 5]
      --debug[=BOOL]           Debug logging
      --compress               Always gzip+base64 the report in result ConfigMaps
      --insecure-no-harden     Do not confine the process (read-only host root,
                               capabilities, seccomp, Landlock)
      --insecure-no-view-check Do not compare the daemon's mounts below the host root
                               with the node kubelet's (for simulated nodes whose root
                               is a plain directory)
      --probe                  Liveness probe: exit 0 while the daemon with these options
                               keeps its heartbeat, 1 when it is late or missing
  kubectl-fio ...    The kubectl plugin (also: this binary linked as kubectl-fio in
                     PATH, then `kubectl fio`): kubectl-fio --help
  crds [--out DIR]   Print the CustomResourceDefinitions as multi-document YAML,
                     or write one file per CRD into DIR (deploy/crds is generated
                     by: cargo run --bin fio-operator -- crds --out deploy/crds)

Options:
  -h, --help         Print this help
  -V, --version      Print the version
";

enum Command {
    Help,
    Version,
    Crds {
        out: Option<PathBuf>,
    },
    Run {
        metrics: ServeOptions,
        max_pause: Duration,
        trust_node_annotations: bool,
    },
    Daemon {
        opts: fio_daemon::Options,
        debug: bool,
        no_harden: bool,
        /// Only check the heartbeat of the daemon these options describe.
        probe: bool,
    },
}

const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8585";
const DEFAULT_PLAIN_METRICS_ADDR: &str = "0.0.0.0:8383";
const DEFAULT_SERVING_CERT_DIR: &str = "/var/run/secrets/serving-cert";

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().map(PathBuf::from).unwrap_or_default();
    let mut args: Vec<OsString> = args.collect();
    if argv0.file_name().is_some_and(|n| n == "kubectl-fio") {
        return kubectl_plugin(args);
    }
    if args.first().is_some_and(|a| a == "kubectl-fio") {
        args.remove(0);
        return kubectl_plugin(args);
    }
    let command = match parse(args) {
        Ok(command) => command,
        Err(msg) => {
            eprintln!("fio-operator: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => write_stdout(USAGE),
        Command::Version => write_stdout(&format!("fio-operator {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Crds { out } => crds(out),
        Command::Run {
            metrics,
            max_pause,
            trust_node_annotations,
        } => run(metrics, max_pause, trust_node_annotations),
        Command::Daemon {
            opts, probe: true, ..
        } => return fio_daemon::probe(&opts),
        Command::Daemon {
            opts,
            debug,
            no_harden,
            probe: false,
        } => {
            // As the daemon always logged: our crates only, no time or target (`oc logs` shows
            // the daemon's lines as upstream's).
            let l = if debug { "debug" } else { "info" };
            init_logging(&format!("fio_daemon={l},fio_core={l}"), true);
            return fio_daemon::main(opts, no_harden);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("fio-operator: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: Vec<OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let command = match parser.next().map_err(|e| e.to_string())? {
        None => return Err("missing command".into()),
        Some(Short('h') | Long("help")) => return Ok(Command::Help),
        Some(Short('V') | Long("version")) => return Ok(Command::Version),
        Some(Value(v)) => v
            .into_string()
            .map_err(|v| format!("unknown command {v:?}"))?,
        Some(arg) => return Err(arg.unexpected().to_string()),
    };
    match command.as_str() {
        "help" => Ok(Command::Help),
        "run" => {
            let mut opts = ServeOptions {
                addr: DEFAULT_METRICS_ADDR.parse().map_err(|e| format!("{e}"))?,
                plain_addr: Some(
                    DEFAULT_PLAIN_METRICS_ADDR
                        .parse()
                        .map_err(|e| format!("{e}"))?,
                ),
                cert_dir: PathBuf::from(DEFAULT_SERVING_CERT_DIR),
                cert_poll: Duration::from_secs(5),
                limits: Limits::default(),
            };
            let mut max_pause = Duration::from_secs(3600);
            let mut trust_node_annotations = false;
            while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
                match arg {
                    Long("metrics-addr") => {
                        let v = parser.value().map_err(|e| e.to_string())?;
                        let v = v.to_string_lossy();
                        opts.addr = v
                            .parse()
                            .map_err(|e| format!("--metrics-addr {v}: {e} (want IP:PORT)"))?;
                    }
                    Long("metrics-plain-addr") => {
                        let v = parser.value().map_err(|e| e.to_string())?;
                        let v = v.to_string_lossy();
                        opts.plain_addr = match v.as_ref() {
                            "none" => None,
                            v => Some(v.parse().map_err(|e| {
                                format!("--metrics-plain-addr {v}: {e} (want IP:PORT or none)")
                            })?),
                        };
                    }
                    Long("serving-cert-dir") => {
                        opts.cert_dir = PathBuf::from(parser.value().map_err(|e| e.to_string())?)
                    }
                    Long("max-pause") => {
                        let v = parser.value().map_err(|e| e.to_string())?;
                        let v = v.to_string_lossy();
                        let secs: u64 = v
                            .parse()
                            .map_err(|e| format!("--max-pause {v}: {e} (want seconds)"))?;
                        max_pause = Duration::from_secs(secs);
                    }
                    Long("trust-node-annotations") => trust_node_annotations = true,
                    Short('h') | Long("help") => return Ok(Command::Help),
                    arg => return Err(arg.unexpected().to_string()),
                }
            }
            Ok(Command::Run {
                metrics: opts,
                max_pause,
                trust_node_annotations,
            })
        }
        "crds" => {
            let mut out = None;
            while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
                match arg {
                    Short('o') | Long("out") => {
                        out = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?))
                    }
                    Short('h') | Long("help") => return Ok(Command::Help),
                    arg => return Err(arg.unexpected().to_string()),
                }
            }
            Ok(Command::Crds { out })
        }
        api::daemon_args::SUBCOMMAND => parse_daemon(&mut parser),
        other => Err(format!("unknown command '{other}'")),
    }
}

fn parse_daemon(p: &mut lexopt::Parser) -> Result<Command, String> {
    let options = p.raw_args().map_err(|e| e.to_string())?;
    let Some(args) = api::daemon_args::DaemonArgs::parse(options).map_err(|e| e.to_string())?
    else {
        return Ok(Command::Help);
    };
    let node_name = std::env::var(api::names::ENV_NODE_NAME).map_err(|_| {
        format!(
            "the environment variable {} must be set",
            api::names::ENV_NODE_NAME
        )
    })?;
    Ok(Command::Daemon {
        opts: fio_daemon::Options::new(&args, node_name),
        debug: args.debug,
        no_harden: args.insecure_no_harden,
        probe: args.probe,
    })
}

/// Logs to stderr, filtered by `$FIO_LOG` (else `default`); `plain`: without time and target.
fn init_logging(default: &str, plain: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if plain {
        fmt.without_time().with_target(false).init();
    } else {
        fmt.init();
    }
}

fn crds(out: Option<PathBuf>) -> Result<(), String> {
    let Some(dir) = out else {
        return write_stdout(&api::crds_yaml().map_err(|e| format!("serialising the CRDs: {e}"))?);
    };
    let files = api::crd_files().map_err(|e| format!("serialising the CRDs: {e}"))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for file in files {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, file.yaml).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The namespace to watch: `$WATCH_NAMESPACE`, else the service account's (upstream's order).
fn watch_namespace() -> Result<String, String> {
    const SA_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
    if let Ok(ns) = std::env::var(api::names::ENV_WATCH_NAMESPACE) {
        if !ns.is_empty() {
            return Ok(ns);
        }
    }
    std::fs::read_to_string(SA_NAMESPACE)
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!(
                "{} must be set (or run in a pod with {SA_NAMESPACE})",
                api::names::ENV_WATCH_NAMESPACE
            )
        })
}

/// `kubectl fio ...`: exit 0, 1 on failure, 2 on a usage error (as kubectl).
fn kubectl_plugin(args: Vec<OsString>) -> ExitCode {
    use fio_operator::kubectl;
    let command = match kubectl::parse(args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("kubectl-fio: {msg}\n\n{}", kubectl::USAGE);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubectl-fio: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(kubectl::run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`kubectl fio report N | head`) is not a failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kubectl-fio: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    metrics_opts: ServeOptions,
    max_pause: Duration,
    trust_node_annotations: bool,
) -> Result<(), String> {
    init_logging("info", false);
    let namespace = watch_namespace()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("building the Kubernetes client: {e}"))?;
        let metrics = Arc::new(Metrics::new());
        let reviewer = Reviewer::new(client.clone());
        fio_operator::metrics::serve(metrics.clone(), &metrics_opts, Some(reviewer))
            .await
            .map_err(|e| e.to_string())?;
        // One operator reconciles: an upgrade's new pod or a second replica waits here.
        let identity = std::env::var(api::names::ENV_POD_NAME).unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let mut lock = fio_operator::lease::Lock::new(
            kube::Api::namespaced(client.clone(), &namespace),
            identity,
        );
        metrics.leader(fio_operator::lease::LEASE_NAME, false);
        lock.acquire().await;
        metrics.leader(fio_operator::lease::LEASE_NAME, true);
        tokio::select! {
            r = fio_operator::controller::run(
                client, namespace, metrics, max_pause, trust_node_annotations,
            ) => {
                r.map_err(|e| format!("{e:#}"))
            }
            lost = lock.hold() => Err(format!("leader election lost: {lost}")),
        }
    })
}

fn write_stdout(s: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(s.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))
}
