//! `fio-scanner`: AIDE's command line over `fio-core`. It links no Kubernetes client and no
//! async runtime: the cluster daemon is `fio-operator daemon`.

use fio_core::config::{Config, LoadOptions};
use fio_core::exit::Exit;
use fio_core::report;
use fio_core::scan::{self, Mode};
use std::path::PathBuf;
use std::process::ExitCode;

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
                      (The daemon of a FileIntegrity in a cluster is `fio-operator daemon`.)
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
            Long("owner") => {
                return Err(
                    "daemon --owner is the cluster daemon, now `fio-operator daemon \
                            --owner=FI --namespace=NS` (same options)"
                        .into(),
                )
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
        tracing_subscriber::EnvFilter::new(format!("fio_core={level},fio_scanner={level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}

fn level_name(l: fio_core::options::LogLevel) -> &'static str {
    use fio_core::options::LogLevel::*;
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
            return Exit::InvalidArgument.into();
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
                fio_core::database::AIDE_VERSION
            );
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let config = match Config::load(&args.config, &args.load) {
        Ok(c) => c,
        Err(e) => {
            init_logging("warn");
            tracing::error!("{e}");
            return e.exit().into();
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
    let exit = match args.cmd {
        Cmd::ConfigCheck => Exit::OK,
        Cmd::Scan(mode) => run_scan(&config, mode),
        Cmd::Reinit => run_reinit(&config, args.max_backups, args.log),
        Cmd::Daemon => run_daemon(&args),
        Cmd::Help | Cmd::Version => Exit::OK,
    };
    exit.into()
}

/// AIDE opens (and locks) every report URL before scanning, so a bad URL fails fast.
fn open_reports(config: &Config) -> Result<report::ReportOutputs, Exit> {
    report::ReportOutputs::open(&config.options.report, false).map_err(|e| {
        tracing::error!("{e}");
        e.exit()
    })
}

fn report_and_code(
    config: &Config,
    outputs: &mut report::ReportOutputs,
    out: &scan::Outcome,
) -> Exit {
    let r = out.report(config);
    if let Err(e) = outputs.write(&r) {
        tracing::error!("{e}");
        return e.exit();
    }
    report::exit(&r)
}

fn run_scan(config: &Config, mode: Mode) -> Exit {
    let mut outputs = match open_reports(config) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match scan::run(config, mode) {
        Ok(out) => report_and_code(config, &mut outputs, &out),
        Err(e) => {
            tracing::error!("{e}");
            e.exit()
        }
    }
}

fn run_reinit(config: &Config, max_backups: usize, log: Option<PathBuf>) -> Exit {
    use fio_core::options::Url;
    let (Some(Url::File(db_in)), Some(Url::File(db_out))) =
        (&config.options.database_in, &config.options.database_out)
    else {
        tracing::error!("--reinit needs file: URLs for database_in and database_out");
        return Exit::InvalidConfig;
    };
    let mut outputs = match open_reports(config) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let out = match scan::run(config, Mode::Init) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return e.exit();
        }
    };
    let log = log.or_else(|| db_in.parent().map(|d| d.join("aide.log")));
    match fio_core::backups::rotate(db_out, db_in, log.as_deref(), max_backups) {
        Ok(r) => {
            for b in &r.backups {
                tracing::info!("backup: {}", b.display());
            }
            report_and_code(config, &mut outputs, &out)
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit()
        }
    }
}

fn run_daemon(args: &Args) -> Exit {
    use fio_core::runner::{run_local, NodeScanner};
    let node = NodeScanner {
        config_path: args.config.clone(),
        load: args.load.clone(),
        max_backups: args.max_backups,
        node_name: std::env::var("NODE_NAME").unwrap_or_else(|_| "localhost".into()),
        own: None,
        node_root: None,
    };
    // Upstream clamps the interval to at least 10 seconds.
    let interval = std::time::Duration::from_secs(args.interval.max(10));
    run_local(&node, interval, args.once).exit()
}
