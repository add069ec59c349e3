//! `kubectl fio`: the kubectl plugin (the `fio-operator` binary run as `kubectl-fio`, a link
//! in `PATH`). It reads node statuses and kept failure reports with the user's kubeconfig,
//! nothing else: `get`/`list` on `fileintegritynodestatuses` and `get` on ConfigMaps in the
//! operator's namespace are all the permission it needs.
//!
//! - `kubectl fio changes [FILEINTEGRITY] [--node N] [-o table|wide|json|yaml]`: changed paths
//!   grouped across nodes ([`changes`]).
//! - `kubectl fio report NODE [--fileintegrity FI] [-o text|json]`: a node's kept failure
//!   report in clear (decompressed), or its change list as AIDE's JSON report.
//! - `kubectl fio accept FILEINTEGRITY NODE (PATH...|--all)`: accept current changes of a node
//!   into its baseline, per path (issue 28): annotates the FileIntegrity with the paths and the
//!   user's name as the API server knows it (a SelfSubjectReview); needs `patch` on it.

pub mod changes;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Context as _};
use fio_api::{names, FileIntegrityNodeCondition, FileIntegrityNodeStatus};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};

/// Where upstream installs the operator: the namespace used when neither `-n` nor the
/// kubeconfig's context names one.
pub const DEFAULT_NAMESPACE: &str = "openshift-file-integrity";

pub const USAGE: &str = "\
Usage: kubectl fio <COMMAND> [OPTIONS]

The File Integrity Operator's kubectl plugin: what changed on which nodes.

Commands:
  changes [FILEINTEGRITY] [--node NODE] [-o table|wide|json|yaml]
                 Changed paths of the nodes' last results, grouped by path: the nodes
                 that share each change and since when
  report NODE [--fileintegrity FI] [-o text|json]
                 The node's kept failure report in clear (json: its full change list,
                 AIDE's JSON report)
  accept FILEINTEGRITY NODE (PATH...|--all)
                 Accept the node's current changes of those paths (--all: every
                 listed change) into its baseline, without a re-init; recorded
                 under your user name

Options:
  -n, --namespace NS   The operator's namespace [default: the context's, else
                       openshift-file-integrity]
      --kubeconfig F   The kubeconfig [default: $KUBECONFIG, ~/.kube/config]
      --context C      The kubeconfig context
  -h, --help           Print this help
";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Changes {
        fileintegrity: Option<String>,
        node: Option<String>,
        output: Output,
        conn: Connection,
    },
    Report {
        node: String,
        fileintegrity: Option<String>,
        json: bool,
        conn: Connection,
    },
    Accept {
        fileintegrity: String,
        node: String,
        /// `["*"]` for `--all`.
        paths: Vec<String>,
        conn: Connection,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
}

/// How to reach the cluster, as kubectl's own flags say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub namespace: Option<String>,
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
}

/// Parse the plugin's arguments (after `kubectl fio`).
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut words: Vec<String> = Vec::new();
    let mut conn = Connection::default();
    let (mut node, mut fi, mut output, mut all) = (None, None, None, false);
    fn text(v: OsString) -> Result<String, String> {
        v.into_string().map_err(|v| format!("not UTF-8: {v:?}"))
    }
    fn value(p: &mut lexopt::Parser) -> Result<String, String> {
        p.value().map_err(|e| e.to_string()).and_then(text)
    }
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('n') | Long("namespace") => conn.namespace = Some(value(&mut p)?),
            Long("kubeconfig") => conn.kubeconfig = Some(value(&mut p)?),
            Long("context") => conn.context = Some(value(&mut p)?),
            Long("node") => node = Some(value(&mut p)?),
            Long("fileintegrity") => fi = Some(value(&mut p)?),
            Short('o') | Long("output") => output = Some(value(&mut p)?),
            Long("all") => all = true,
            Value(v) => words.push(text(v)?),
            arg => return Err(arg.unexpected().to_string()),
        }
    }
    let mut words = words.into_iter();
    match words.next().as_deref() {
        None | Some("help") => Ok(Command::Help),
        Some("changes") => {
            let fileintegrity = words.next().or(fi);
            if let Some(extra) = words.next() {
                return Err(format!("changes: unexpected argument {extra:?}"));
            }
            let output = match output.as_deref() {
                None | Some("table") => Output::Table,
                Some("wide") => Output::Wide,
                Some("json") => Output::Json,
                Some("yaml") => Output::Yaml,
                Some(o) => return Err(format!("changes: -o {o}: want table, wide, json or yaml")),
            };
            Ok(Command::Changes {
                fileintegrity,
                node,
                output,
                conn,
            })
        }
        Some("report") => {
            let node = words
                .next()
                .or(node)
                .ok_or("report: which node? (kubectl fio report NODE)")?;
            if let Some(extra) = words.next() {
                return Err(format!("report: unexpected argument {extra:?}"));
            }
            let json = match output.as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(o) => return Err(format!("report: -o {o}: want text or json")),
            };
            Ok(Command::Report {
                node,
                fileintegrity: fi,
                json,
                conn,
            })
        }
        Some("accept") => {
            let usage = "accept: kubectl fio accept FILEINTEGRITY NODE (PATH...|--all)";
            let fileintegrity = words.next().or(fi).ok_or(usage)?;
            let node = words.next().or(node).ok_or(usage)?;
            let paths: Vec<String> = words.collect();
            let paths = match (all, paths.is_empty()) {
                (true, true) => vec!["*".to_owned()],
                (false, false) => paths,
                (true, false) => return Err("accept: paths or --all, not both".into()),
                (false, true) => return Err(format!("{usage}: which paths?")),
            };
            Ok(Command::Accept {
                fileintegrity,
                node,
                paths,
                conn,
            })
        }
        Some(other) => Err(format!("unknown command {other:?}")),
    }
}

/// A client and namespace from the kubeconfig, as kubectl would choose them.
async fn connect(conn: &Connection) -> anyhow::Result<(Client, String)> {
    let kubeconfig = match &conn.kubeconfig {
        Some(path) => Some(Kubeconfig::read_from(path).with_context(|| format!("reading {path}"))?),
        None => Kubeconfig::read().ok(),
    };
    let options = KubeConfigOptions {
        context: conn.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &kubeconfig {
        Some(kc) => Config::from_custom_kubeconfig(kc.clone(), &options)
            .await
            .context("loading the kubeconfig")?,
        None => Config::infer()
            .await
            .context("no kubeconfig and not in a cluster")?,
    };
    // The context's namespace only when it names one (kube's default would be `default`).
    let context_ns = kubeconfig.as_ref().and_then(|kc| {
        let name = conn.context.as_ref().or(kc.current_context.as_ref())?;
        let ctx = kc.contexts.iter().find(|c| &c.name == name)?;
        ctx.context.as_ref()?.namespace.clone()
    });
    let namespace = conn
        .namespace
        .clone()
        .or(context_ns)
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let client = Client::try_from(config).context("connecting to the cluster")?;
    Ok((client, namespace))
}

/// Run a parsed command, writing to stdout.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Help => out.write_all(USAGE.as_bytes())?,
        Command::Changes {
            fileintegrity,
            node,
            output,
            conn,
        } => {
            let (client, ns) = connect(&conn).await?;
            let statuses = list_statuses(&client, &ns).await?;
            let c = changes::group(&statuses, fileintegrity.as_deref(), node.as_deref());
            let text = match output {
                Output::Json => serde_json::to_string_pretty(&c)? + "\n",
                Output::Yaml => serde_saphyr::to_string(&c)?,
                Output::Table | Output::Wide => {
                    let tty = std::io::stdout().is_terminal();
                    let style = changes::Style {
                        colour: tty && std::env::var_os("NO_COLOR").is_none(),
                        width: tty.then(terminal_width),
                        wide: output == Output::Wide,
                    };
                    changes::table(&c, k8s_openapi::jiff::Timestamp::now(), style)
                }
            };
            out.write_all(text.as_bytes())?;
        }
        Command::Report {
            node,
            fileintegrity,
            json,
            conn,
        } => {
            let (client, ns) = connect(&conn).await?;
            report(
                &client,
                &ns,
                &node,
                fileintegrity.as_deref(),
                json,
                &mut out,
            )
            .await?;
        }
        Command::Accept {
            fileintegrity,
            node,
            paths,
            conn,
        } => {
            let (client, ns) = connect(&conn).await?;
            let user = whoami(&client).await?;
            let value = serde_json::json!({ node.clone(): paths }).to_string();
            let patch = serde_json::json!({"metadata": {"annotations": {
                names::ACCEPT_ANNOTATION: value,
                names::ACCEPT_BY_ANNOTATION: user,
            }}});
            let api: Api<fio_api::FileIntegrity> = Api::namespaced(client, &ns);
            api.patch(
                &fileintegrity,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .with_context(|| format!("annotating FileIntegrity {ns}/{fileintegrity}"))?;
            writeln!(
                out,
                "fileintegrity.fileintegrity.openshift.io/{fileintegrity} annotated: accept {} on node {node} as {user}",
                if paths == ["*"] { "every listed change".to_owned() } else { paths.join(", ") }
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The requesting user's name as the API server knows it (what the acceptance policy compares).
async fn whoami(client: &Client) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(
            &kube::api::PostParams::default(),
            &SelfSubjectReview::default(),
        )
        .await
        .context("asking the API server who you are (SelfSubjectReview)")?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| anyhow!("the API server did not say who you are"))
}

/// The terminal's width, as the shell exports it, else 120.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(120)
}

async fn list_statuses(client: &Client, ns: &str) -> anyhow::Result<Vec<FileIntegrityNodeStatus>> {
    let api: Api<FileIntegrityNodeStatus> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing fileintegritynodestatuses in namespace {ns}"))?;
    Ok(list.items)
}

/// Print `node`'s kept failure report (or its change list) in clear.
async fn report(
    client: &Client,
    ns: &str,
    node: &str,
    fi: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let statuses: Vec<FileIntegrityNodeStatus> = list_statuses(client, ns)
        .await?
        .into_iter()
        .filter(|st| st.spec.node_name == node)
        .filter(|st| {
            fi.is_none_or(|f| st.labels().get(names::OWNER_LABEL).map(String::as_str) == Some(f))
        })
        .collect();
    let st = match statuses.as_slice() {
        [] => bail!("no FileIntegrityNodeStatus for node {node} in namespace {ns}"),
        [one] => one,
        many => {
            let owners: Vec<String> = many
                .iter()
                .filter_map(|st| st.labels().get(names::OWNER_LABEL).cloned())
                .collect();
            bail!(
                "node {node} is scanned by several FileIntegrities ({}): say which with --fileintegrity",
                owners.join(", ")
            )
        }
    };
    let failed = st
        .spec
        .results
        .iter()
        .filter(|r| r.condition == FileIntegrityNodeCondition::Failed)
        .max_by_key(|r| r.last_probe_time.0)
        .ok_or_else(|| {
            anyhow!(
                "node {node} has no failure report (its last result is {})",
                st.spec.last_result.condition
            )
        })?;
    if st.spec.last_result.condition != FileIntegrityNodeCondition::Failed {
        eprintln!(
            "kubectl-fio: node {node} is {} now; its last failure report, of {}:",
            st.spec.last_result.condition, failed.last_probe_time.0
        );
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let name = &failed.result_config_map_name;
    let cm = cms
        .get(name)
        .await
        .with_context(|| format!("reading the kept report {ns}/{name}"))?;
    let key = if json {
        names::CHANGES_JSON_KEY
    } else {
        names::INTEGRITY_LOG_KEY
    };
    let data = cm
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| anyhow!("{ns}/{name} has no {key}"))?;
    let compressed = cm.annotations().contains_key(names::COMPRESSED_ANNOTATION);
    std::io::copy(&mut fio_api::result::unpacked(data, compressed), out)
        .with_context(|| format!("decompressing {key} of {ns}/{name}"))?;
    Ok(())
}
