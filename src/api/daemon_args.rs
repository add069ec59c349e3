//! The daemon's command line, `fio-operator daemon ...`: the one writer (the operator's
//! DaemonSet, the tests' simulated daemons) and the one reader (the binary) of what the
//! operator tells each node. `--interval=N` and `--debug=true|false` are spelled as upstream's,
//! which users and upstream's e2e tests grep for.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::aideconf::HOSTROOT;

/// The subcommand before the options.
pub const SUBCOMMAND: &str = "daemon";
/// Seconds between scans when `--interval` is not given (upstream's `gracePeriod` default).
pub const DEFAULT_INTERVAL: u64 = 900;
/// Upstream clamps the interval to at least this many seconds; so does the daemon.
pub const MIN_INTERVAL: u64 = 10;
pub const DEFAULT_MAX_BACKUPS: u64 = 5;

/// The options of `fio-operator daemon`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonArgs {
    /// The FileIntegrity this daemon scans for.
    pub owner: String,
    pub namespace: String,
    /// The ConfigMap with the rendered AIDE configuration (`None`: the owner's name).
    pub config_map: Option<String>,
    /// Where the node's root filesystem is (`/hostroot` in the pod).
    pub hostroot: PathBuf,
    /// Seconds between scans, as given (the daemon applies [`MIN_INTERVAL`]).
    pub interval: u64,
    pub max_backups: u64,
    pub debug: bool,
    /// Always gzip+base64 the report (upstream's `--lc-compress`).
    pub compress: bool,
    pub insecure_no_harden: bool,
    pub insecure_no_view_check: bool,
    /// Only run the liveness probe of the daemon these options describe.
    pub probe: bool,
    /// No realtime detection: scheduled scans only (ours).
    pub no_realtime: bool,
    /// Realtime detection without naming writers (ours).
    pub no_attribution: bool,
}

/// A command line the daemon cannot run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("daemon needs --{0}")]
    Missing(&'static str),
    #[error("--{option} {value:?}: {reason}")]
    Invalid {
        option: String,
        value: String,
        reason: String,
    },
    #[error("invalid option '{0}'")]
    Unknown(String),
    #[error("{0}")]
    Syntax(String),
}

impl DaemonArgs {
    /// The defaults, for `owner` in `namespace`.
    pub fn new(owner: &str, namespace: &str) -> DaemonArgs {
        DaemonArgs {
            owner: owner.to_owned(),
            namespace: namespace.to_owned(),
            config_map: None,
            hostroot: PathBuf::from(HOSTROOT),
            interval: DEFAULT_INTERVAL,
            max_backups: DEFAULT_MAX_BACKUPS,
            debug: false,
            compress: false,
            insecure_no_harden: false,
            insecure_no_view_check: false,
            probe: false,
            no_realtime: false,
            no_attribution: false,
        }
    }

    /// The whole argv after the binary's name: [`SUBCOMMAND`] then the options. Owner,
    /// namespace, host root, interval, backups and debug always; the rest when set.
    pub fn to_argv(&self) -> Vec<String> {
        let mut argv = vec![
            SUBCOMMAND.to_owned(),
            format!("--owner={}", self.owner),
            format!("--namespace={}", self.namespace),
        ];
        if let Some(cm) = &self.config_map {
            argv.push(format!("--config-map={cm}"));
        }
        argv.extend([
            format!("--hostroot={}", self.hostroot.display()),
            format!("--interval={}", self.interval),
            format!("--max-backups={}", self.max_backups),
            format!("--debug={}", self.debug),
        ]);
        for (set, flag) in [
            (self.compress, "--compress"),
            (self.insecure_no_harden, "--insecure-no-harden"),
            (self.insecure_no_view_check, "--insecure-no-view-check"),
            (self.probe, "--probe"),
            (self.no_realtime, "--no-realtime"),
            (self.no_attribution, "--no-attribution"),
        ] {
            if set {
                argv.push(flag.to_owned());
            }
        }
        argv
    }

    /// Read the options after [`SUBCOMMAND`] (`--name=value` or `--name value`). `Ok(None)`:
    /// help was asked for.
    pub fn parse(
        options: impl IntoIterator<Item = OsString>,
    ) -> Result<Option<DaemonArgs>, ArgsError> {
        use lexopt::prelude::*;
        let mut p = lexopt::Parser::from_args(options);
        let syntax = |e: lexopt::Error| ArgsError::Syntax(e.to_string());
        let (mut owner, mut namespace) = (None, None);
        let mut a = DaemonArgs::new("", "");
        while let Some(arg) = p.next().map_err(syntax)? {
            let name = match arg {
                Short('h') | Long("help") => return Ok(None),
                Long(l) => l.to_owned(),
                arg => return Err(ArgsError::Syntax(arg.unexpected().to_string())),
            };
            match name.as_str() {
                "debug" => {
                    a.debug = match p.optional_value() {
                        None => true,
                        Some(v) => parse_value(&name, v)?,
                    }
                }
                "compress" => a.compress = true,
                "insecure-no-harden" => a.insecure_no_harden = true,
                "insecure-no-view-check" => a.insecure_no_view_check = true,
                "probe" => a.probe = true,
                "no-realtime" => a.no_realtime = true,
                "no-attribution" => a.no_attribution = true,
                "owner" => owner = Some(text(&name, p.value().map_err(syntax)?)?),
                "namespace" => namespace = Some(text(&name, p.value().map_err(syntax)?)?),
                "config-map" => a.config_map = Some(text(&name, p.value().map_err(syntax)?)?),
                "hostroot" => a.hostroot = PathBuf::from(p.value().map_err(syntax)?),
                "interval" => a.interval = parse_value(&name, p.value().map_err(syntax)?)?,
                "max-backups" => a.max_backups = parse_value(&name, p.value().map_err(syntax)?)?,
                _ => return Err(ArgsError::Unknown(format!("--{name}"))),
            }
        }
        a.owner = owner.ok_or(ArgsError::Missing("owner"))?;
        a.namespace = namespace.ok_or(ArgsError::Missing("namespace"))?;
        Ok(Some(a))
    }
}

fn text(option: &str, v: OsString) -> Result<String, ArgsError> {
    v.into_string().map_err(|v| ArgsError::Invalid {
        option: option.to_owned(),
        value: v.to_string_lossy().into_owned(),
        reason: "not UTF-8".into(),
    })
}

fn parse_value<T: std::str::FromStr>(option: &str, v: OsString) -> Result<T, ArgsError>
where
    T::Err: std::fmt::Display,
{
    let v = text(option, v)?;
    v.parse().map_err(|e: T::Err| ArgsError::Invalid {
        option: option.to_owned(),
        value: v.clone(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[String]) -> Result<Option<DaemonArgs>, ArgsError> {
        assert_eq!(argv[0], SUBCOMMAND);
        DaemonArgs::parse(argv[1..].iter().map(OsString::from))
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads_back() {
        let base = DaemonArgs::new("worker-fileintegrity", "openshift-file-integrity");
        let variants = [
            base.clone(),
            DaemonArgs {
                config_map: Some("other-cm".into()),
                hostroot: "/tmp/node root/x".into(),
                interval: 10,
                max_backups: 0,
                debug: true,
                ..base.clone()
            },
            DaemonArgs {
                compress: true,
                insecure_no_harden: true,
                insecure_no_view_check: true,
                probe: true,
                no_realtime: true,
                no_attribution: true,
                ..base.clone()
            },
        ];
        for a in variants {
            assert_eq!(
                parse(&a.to_argv()),
                Ok(Some(a.clone())),
                "{:?}",
                a.to_argv()
            );
        }
    }

    #[test]
    fn the_daemon_set_spelling_is_upstreams() {
        let a = DaemonArgs {
            interval: 20,
            ..DaemonArgs::new("fi", "ns")
        };
        assert_eq!(
            a.to_argv(),
            [
                "daemon",
                "--owner=fi",
                "--namespace=ns",
                "--hostroot=/hostroot",
                "--interval=20",
                "--max-backups=5",
                "--debug=false"
            ]
        );
    }

    #[test]
    fn separate_values_and_defaults_are_read_and_mistakes_named() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let a = DaemonArgs::parse(os(&["--owner", "fi", "--namespace", "ns", "--debug"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            a,
            DaemonArgs {
                debug: true,
                ..DaemonArgs::new("fi", "ns")
            }
        );
        assert_eq!(DaemonArgs::parse(os(&["--help"])), Ok(None));
        assert_eq!(
            DaemonArgs::parse(os(&["--namespace=ns"])),
            Err(ArgsError::Missing("owner"))
        );
        let e = DaemonArgs::parse(os(&["--owner=fi", "--namespace=ns", "--interval=soon"]))
            .unwrap_err();
        assert!(e.to_string().starts_with("--interval \"soon\": "), "{e}");
        assert_eq!(
            DaemonArgs::parse(os(&["--owner=fi", "--frobnicate"])),
            Err(ArgsError::Unknown("--frobnicate".into()))
        );
    }
}
