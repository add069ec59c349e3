//! `fio-scanner`: AIDE's command line over the `fio` library.

use fio::config::{Config, LoadOptions};
use fio::report;
use fio::scan::{self, Mode};
use std::path::PathBuf;
use std::process::ExitCode;

/// AIDE's exit code for a bad command line.
const INVALID_ARGUMENT: u8 = 15;

const USAGE: &str = "Usage: fio-scanner [options] command

Commands (AIDE's):
  -i, --init          Initialize the database (writes database_out)
  -C, --check         Check the database (default)
  -u, --update        Check and update the database (writes database_out)
  -E, --compare       Compare database_in with database_new
  -D, --config-check  Test the configuration file
  -v, --version       Show version and compile-time options
  -h, --help          Show this help

Commands (fio-scanner's own):
  daemon              Run as the per-node daemon: initialise when there is no database,
                      then check every --interval seconds (--once: a single check);
                      logs upstream's lines, keeps aide.log, re-inits with backups.
                      With --owner: the daemon of a FileIntegrity in a cluster (config
                      from the ConfigMap <owner>, results as ConfigMaps, re-init requests;
                      env NODE_NAME, in-cluster config or $KUBECONFIG)
  --reinit            Initialise a new database, then move database_in and the log to
                      timestamped backups (keeping --max-backups of each) and put the
                      new database in place of database_in

Options:
  -c, --config=FILE   Configuration file (default /etc/aide/aide.conf; - for stdin)
  -B, --before=LINE   Configuration line before the file (repeatable)
  -A, --after=LINE    Configuration line after the file (repeatable)
  -L, --log-level=LVL error, warning, notice, info, rule, compare, debug, trace
  -W, --workers=N     Hashing threads (default: all cores)
      --max-backups=N Backups kept by --reinit (default 5)
      --log=FILE      Log file rotated by --reinit (default: aide.log next to database_in)
      --interval=SECS daemon: seconds between checks (default 900, minimum 10)
      --once          daemon: one check, then exit with AIDE's exit code for it
      --owner=FI      daemon: the FileIntegrity this daemon scans for
      --namespace=NS  daemon: its namespace
      --hostroot=DIR  daemon: where the node's root filesystem is (default /hostroot)
      --config-map=CM daemon: the ConfigMap with aide.conf (default: the owner's name)
      --debug[=BOOL]  daemon: debug logging
      --compress      daemon: always gzip+base64 the report in result ConfigMaps
      --insecure-no-harden
                      daemon --owner: do not confine the process (read-only host root,
                      capabilities, seccomp, Landlock); for environments that cannot

Exit codes as AIDE: 0 no differences, 1|2|4 added|removed|changed entries,
14 write error, 15 invalid argument, 16 unimplemented, 17 configuration error, 18 I/O error.
";

#[derive(Debug, PartialEq)]
enum Cmd {
    Scan(Mode),
    ConfigCheck,
    Version,
    Help,
    Reinit,
    Daemon,
}

struct Args {
    cmd: Cmd,
    config: PathBuf,
    load: LoadOptions,
    log_level: Option<String>,
    workers: Option<usize>,
    max_backups: usize,
    log: Option<PathBuf>,
    interval: u64,
    once: bool,
    owner: Option<String>,
    namespace: Option<String>,
    hostroot: PathBuf,
    config_map: Option<String>,
    debug: bool,
    compress: bool,
    no_harden: bool,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mut a = Args {
        cmd: Cmd::Scan(Mode::Check),
        config: PathBuf::from("/etc/aide/aide.conf"),
        load: LoadOptions::default(),
        log_level: None,
        workers: None,
        max_backups: 5,
        log: None,
        interval: 900,
        once: false,
        owner: None,
        namespace: None,
        hostroot: PathBuf::from("/hostroot"),
        config_map: None,
        debug: false,
        compress: false,
        no_harden: false,
    };
    let mut cmds = Vec::new();
    while let Some(arg) = p.next()? {
        match arg {
            Short('i') | Long("init") => cmds.push(Cmd::Scan(Mode::Init)),
            Short('C') | Long("check") => cmds.push(Cmd::Scan(Mode::Check)),
            Short('u') | Long("update") => cmds.push(Cmd::Scan(Mode::Update)),
            Short('E') | Long("compare") => cmds.push(Cmd::Scan(Mode::Compare)),
            Short('D') | Long("config-check") => cmds.push(Cmd::ConfigCheck),
            Short('v') | Long("version") => cmds.push(Cmd::Version),
            Short('h') | Long("help") => cmds.push(Cmd::Help),
            Long("reinit") => cmds.push(Cmd::Reinit),
            Short('c') | Long("config") => a.config = p.value()?.into(),
            Short('B') | Long("before") => a.load.before.push(p.value()?.string()?),
            Short('A') | Long("after") => a.load.after.push(p.value()?.string()?),
            Short('L') | Long("log-level") => a.log_level = Some(p.value()?.string()?),
            Short('W') | Long("workers") => a.workers = Some(p.value()?.parse()?),
            Long("max-backups") => a.max_backups = p.value()?.parse()?,
            Long("log") => a.log = Some(p.value()?.into()),
            Long("interval") => a.interval = p.value()?.parse()?,
            Long("once") => a.once = true,
            Long("owner") => a.owner = Some(p.value()?.string()?),
            Long("namespace") => a.namespace = Some(p.value()?.string()?),
            Long("hostroot") => a.hostroot = p.value()?.into(),
            Long("config-map") => a.config_map = Some(p.value()?.string()?),
            Long("compress") => a.compress = true,
            Long("insecure-no-harden") => a.no_harden = true,
            Long("debug") => {
                a.debug = match p.optional_value() {
                    None => true,
                    Some(v) => v.parse()?,
                }
            }
            Value(v) if v == "daemon" => cmds.push(Cmd::Daemon),
            _ => return Err(arg.unexpected()),
        }
    }
    if cmds.len() > 1 {
        return Err("only one command (--init, --check, --update, --compare, --config-check, --reinit) at a time".into());
    }
    if let Some(c) = cmds.pop() {
        a.cmd = c;
    }
    Ok(a)
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIO_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("fio={level},fio_scanner={level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}

fn level_name(l: fio::options::LogLevel) -> &'static str {
    use fio::options::LogLevel::*;
    match l {
        Error => "error",
        Warning => "warn",
        Notice | Info => "info",
        Rule | Compare | Config | Debug => "debug",
        Trace => "trace",
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fio-scanner: {e}\n\n{USAGE}");
            return ExitCode::from(INVALID_ARGUMENT);
        }
    };
    match args.cmd {
        Cmd::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Cmd::Version => {
            println!(
                "fio-scanner {} (AIDE {} compatible: database format, configuration and reports)\n\n\
                 Hashes: md5 sha1 sha256 sha512 rmd160 tiger crc32 crc32b whirlpool gost\n\
                 Attributes: p i l n u g s b m a c S I ANF ARF growing ftype acl selinux xattrs e2fsattrs caps",
                env!("CARGO_PKG_VERSION"),
                fio::database::AIDE_VERSION
            );
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    if let (Cmd::Daemon, Some(owner)) = (&args.cmd, &args.owner) {
        return run_cluster_daemon(&args, owner.clone());
    }
    let config = match Config::load(&args.config, &args.load) {
        Ok(c) => c,
        Err(e) => {
            init_logging("warn");
            tracing::error!("{e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    init_logging(
        args.log_level
            .as_deref()
            .unwrap_or(level_name(config.options.log_level)),
    );
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    if let Some(n) = args.workers.or(config.options.num_workers) {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }
    let code = match args.cmd {
        Cmd::ConfigCheck => 0,
        Cmd::Scan(mode) => run_scan(&config, mode),
        Cmd::Reinit => run_reinit(&config, args.max_backups, args.log),
        Cmd::Daemon => run_daemon(&args),
        Cmd::Help | Cmd::Version => 0,
    };
    ExitCode::from(code as u8)
}

/// AIDE opens (and locks) every report URL before scanning, so a bad URL fails fast.
fn open_reports(config: &Config) -> Result<report::ReportOutputs, i32> {
    report::ReportOutputs::open(&config.options.report, false).map_err(|e| {
        tracing::error!("{e}");
        e.exit_code()
    })
}

fn report_and_code(
    config: &Config,
    outputs: &mut report::ReportOutputs,
    out: &scan::Outcome,
) -> i32 {
    let r = out.report(config);
    if let Err(e) = outputs.write(&r) {
        tracing::error!("{e}");
        return e.exit_code();
    }
    report::exit_code(&r)
}

fn run_scan(config: &Config, mode: Mode) -> i32 {
    let mut outputs = match open_reports(config) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match scan::run(config, mode) {
        Ok(out) => report_and_code(config, &mut outputs, &out),
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

fn run_reinit(config: &Config, max_backups: usize, log: Option<PathBuf>) -> i32 {
    let (Some(fio::options::Url::File(db_in)), Some(fio::options::Url::File(db_out))) =
        (&config.options.database_in, &config.options.database_out)
    else {
        tracing::error!("--reinit needs file: URLs for database_in and database_out");
        return 17;
    };
    let mut outputs = match open_reports(config) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let out = match scan::run(config, Mode::Init) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit_code();
        }
    };
    let log = log.or_else(|| db_in.parent().map(|d| d.join("aide.log")));
    match fio::reinit::rotate(db_out, db_in, log.as_deref(), max_backups) {
        Ok(r) => {
            for b in &r.backups {
                tracing::info!("backup: {}", b.display());
            }
            report_and_code(config, &mut outputs, &out)
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

fn run_daemon(args: &Args) -> i32 {
    use fio::daemon::{run_local, NodeScanner, ScanResult};
    let node = NodeScanner {
        config_path: args.config.clone(),
        load: args.load.clone(),
        max_backups: args.max_backups,
        node_name: std::env::var("NODE_NAME").unwrap_or_else(|_| "localhost".into()),
    };
    // Upstream clamps the interval to at least 10 seconds.
    let interval = std::time::Duration::from_secs(args.interval.max(10));
    match run_local(&node, interval, args.once) {
        ScanResult::Succeeded => 0,
        ScanResult::Failed {
            added,
            removed,
            changed,
            ..
        } => (added > 0) as i32 | ((removed > 0) as i32) << 1 | ((changed > 0) as i32) << 2,
        ScanResult::Errored { .. } => 18,
    }
}

/// `daemon --owner=FI`: the daemon pod of a FileIntegrity. Exits non-zero only when it cannot
/// run at all (the kubelet restarts it), as upstream's FATAL.
fn run_cluster_daemon(args: &Args, owner: String) -> ExitCode {
    init_logging(if args.debug { "debug" } else { "info" });
    let Ok(node_name) = std::env::var(fio::api::names::ENV_NODE_NAME) else {
        tracing::error!("the environment variable NODE_NAME must be set");
        return ExitCode::from(1);
    };
    let Some(namespace) = args.namespace.clone() else {
        tracing::error!("daemon --owner needs --namespace");
        return ExitCode::from(INVALID_ARGUMENT);
    };
    let opts = fio::daemon::cluster::Options {
        config_map: args.config_map.clone().unwrap_or_else(|| owner.clone()),
        owner,
        namespace,
        hostroot: args.hostroot.clone(),
        interval: std::time::Duration::from_secs(args.interval.max(10)),
        max_backups: args.max_backups,
        node_name,
        force_compress: args.compress,
    };
    // Before the runtime exists: hardening needs a single-threaded process.
    if args.no_harden {
        tracing::warn!("--insecure-no-harden: running without confinement");
    } else {
        match fio::daemon::cluster::harden(&opts) {
            Ok(report) => {
                for step in &report.steps {
                    tracing::info!("hardened: {step}");
                }
            }
            Err(e) => {
                tracing::error!(
                    "refusing to run unconfined: {e:#} (--insecure-no-harden runs without)"
                );
                return ExitCode::from(1);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = fio::daemon::cluster::run(opts) => r,
            _ = shutdown_signal() => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("exit: {e:#}");
            ExitCode::from(1)
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
