//! `fio-operator`: the File Integrity Operator binary.
//!
//! Subcommands:
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

use fio::api;
use fio::metrics::{Metrics, ServeOptions};

const USAGE: &str = "\
Usage: fio-operator <COMMAND>

Commands:
  run                Run the operator: watches FileIntegrity objects in $WATCH_NAMESPACE
                     (default: the namespace of its service account); in-cluster config
                     or $KUBECONFIG; logs filtered by $FIO_LOG (default info)
      --metrics-addr ADDR      Serve metrics (/metrics-fio, /metrics) and /healthz here
                               [default: 0.0.0.0:8585]; plain HTTP only on loopback
      --serving-cert-dir DIR   tls.crt and tls.key for HTTPS metrics
                               [default: /var/run/secrets/serving-cert]
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
    Crds { out: Option<PathBuf> },
    Run(ServeOptions),
}

const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8585";
const DEFAULT_SERVING_CERT_DIR: &str = "/var/run/secrets/serving-cert";

fn main() -> ExitCode {
    let command = match parse(std::env::args_os().skip(1).collect()) {
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
        Command::Run(metrics) => run(metrics),
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
                cert_dir: PathBuf::from(DEFAULT_SERVING_CERT_DIR),
            };
            while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
                match arg {
                    Long("metrics-addr") => {
                        let v = parser.value().map_err(|e| e.to_string())?;
                        let v = v.to_string_lossy();
                        opts.addr = v
                            .parse()
                            .map_err(|e| format!("--metrics-addr {v}: {e} (want IP:PORT)"))?;
                    }
                    Long("serving-cert-dir") => {
                        opts.cert_dir = PathBuf::from(parser.value().map_err(|e| e.to_string())?)
                    }
                    Short('h') | Long("help") => return Ok(Command::Help),
                    arg => return Err(arg.unexpected().to_string()),
                }
            }
            Ok(Command::Run(opts))
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
        other => Err(format!("unknown command '{other}'")),
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

fn run(metrics_opts: ServeOptions) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
        fio::metrics::serve(metrics.clone(), &metrics_opts)
            .await
            .map_err(|e| e.to_string())?;
        fio::controller::run(client, namespace, metrics)
            .await
            .map_err(|e| format!("{e:#}"))
    })
}

fn write_stdout(s: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(s.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))
}
