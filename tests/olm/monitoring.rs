//! An OLM install is monitored (issue 23, point 1): the ServiceMonitor the operator applies at
//! start names a token Secret, a Service and ports that the bundle brought, and Prometheus's
//! scrape of each endpoint, made here exactly as the ServiceMonitor describes it (the Service's
//! EndpointSlice for the address, the named port, the scheme and path, the bearer token read from
//! the named Secret and key, the TLS server name), answers 200 with the metrics.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cluster::real::{kubectl, kubectl_try, wait_until};
use crate::cluster::{block_on_side, secs, tls};

/// The Secret the Deployment mounts its serving certificate from (OpenShift's service CA writes
/// it; here the test does).
const SERVING_CERT_SECRET: &str = "file-integrity-operator-serving-cert";
const SERVICE: &str = "metrics";
const SERVICE_MONITOR: &str = "metrics";

/// Acts as OpenShift's service CA before the install: a serving certificate for the metrics
/// Service in the Secret the operator's Deployment mounts. Returns the CA certificate, which
/// stands for the ServiceMonitor's `caFile` (the service CA bundle Prometheus mounts).
pub fn serving_cert(ns: &str, dir: &Path) -> PathBuf {
    let certs = dir.join("serving-cert");
    tls::issue_for(dir, "service-ca", &certs, &format!("{SERVICE}.{ns}.svc"));
    let path = |flag: &str, file: &str| format!("--{flag}={}", certs.join(file).display());
    kubectl(&[
        "-n",
        ns,
        "delete",
        "secret",
        SERVING_CERT_SECRET,
        "--ignore-not-found",
    ]);
    kubectl(&[
        "-n",
        ns,
        "create",
        "secret",
        "tls",
        SERVING_CERT_SECRET,
        &path("cert", "tls.crt"),
        &path("key", "tls.key"),
    ]);
    dir.join("service-ca.crt")
}

fn json(args: &[&str]) -> Result<Value, String> {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-o", "json"]);
    let text = kubectl_try(&all)?;
    serde_json::from_str(&text).map_err(|e| format!("kubectl {args:?}: not JSON: {e}"))
}

/// One scrape target as the Prometheus operator derives it from an endpoint of the monitor.
struct Target {
    addr: SocketAddr,
    scheme: String,
    path: String,
    token: Option<String>,
    server_name: Option<String>,
}

/// The targets of the ServiceMonitor, with every object it names read as Prometheus would:
/// an error names the first that is missing.
fn targets(ns: &str) -> Result<Vec<Target>, String> {
    let monitor = json(&["-n", ns, "get", "servicemonitor", SERVICE_MONITOR])?;
    let selector = &monitor["spec"]["selector"]["matchLabels"];
    let service = json(&["-n", ns, "get", "service", SERVICE])?;
    let selected = selector.as_object().is_some_and(|m| {
        !m.is_empty()
            && m.iter()
                .all(|(k, v)| service["metadata"]["labels"][k.as_str()] == *v)
    });
    if !selected {
        return Err(format!(
            "the ServiceMonitor selects {selector}, Service {SERVICE} has labels {}",
            service["metadata"]["labels"]
        ));
    }
    let slices = json(&[
        "-n",
        ns,
        "get",
        "endpointslices",
        &format!("-lkubernetes.io/service-name={SERVICE}"),
    ])?;
    let slice = slices["items"]
        .as_array()
        .and_then(|s| s.first())
        .ok_or("no EndpointSlice of the metrics Service")?;
    let ip: IpAddr = slice["endpoints"][0]["addresses"][0]
        .as_str()
        .ok_or(format!("no ready address in {slice}"))?
        .parse()
        .map_err(|e| format!("address: {e}"))?;
    let endpoints = monitor["spec"]["endpoints"]
        .as_array()
        .ok_or("the ServiceMonitor has no endpoints")?;
    let mut out = Vec::new();
    for ep in endpoints {
        let port_name = ep["port"]
            .as_str()
            .ok_or(format!("endpoint {ep}: no port"))?;
        let port = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == port_name)
            .and_then(|p| p["port"].as_u64())
            .ok_or(format!("the Service has no port named {port_name}"))?;
        let token = match ep["authorization"]["credentials"].as_object() {
            None => None,
            Some(c) => {
                let (name, key) = (c["name"].as_str(), c["key"].as_str());
                let (Some(name), Some(key)) = (name, key) else {
                    return Err(format!("endpoint {port_name}: credentials {c:?}"));
                };
                let secret = json(&["-n", ns, "get", "secret", name])?;
                let encoded = secret["data"][key]
                    .as_str()
                    .ok_or(format!("Secret {name} has no key {key} (yet)"))?;
                let bytes =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
                        .map_err(|e| format!("Secret {name} key {key}: {e}"))?;
                Some(String::from_utf8(bytes).map_err(|e| format!("token: {e}"))?)
            }
        };
        out.push(Target {
            addr: SocketAddr::new(ip, u16::try_from(port).map_err(|e| e.to_string())?),
            scheme: ep["scheme"].as_str().unwrap_or("http").to_owned(),
            path: ep["path"].as_str().unwrap_or("/metrics").to_owned(),
            token,
            server_name: ep["tlsConfig"]["serverName"].as_str().map(str::to_owned),
        });
    }
    Ok(out)
}

fn scrape(t: &Target, ca: &Path) -> Result<String, String> {
    block_on_side(async {
        match t.scheme.as_str() {
            "https" => {
                let name = t.server_name.as_deref().ok_or("https without serverName")?;
                tls::https_get_as(t.addr, ca, name, &t.path, t.token.as_deref()).await
            }
            "http" => {
                let tcp = tokio::net::TcpStream::connect(t.addr)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(tls::exchange(tcp, &t.path, t.token.as_deref()).await)
            }
            other => Err(format!("scheme {other}")),
        }
    })
}

/// Waits until every endpoint of the ServiceMonitor is scraped with 200 and the operator's
/// metrics, exactly as the ServiceMonitor describes it; returns each endpoint's
/// `scheme://address/path`.
pub fn scrape_as_the_service_monitor(ns: &str, ca: &Path) -> Vec<String> {
    wait_until(
        "both ServiceMonitor endpoints scraped with its credentials",
        secs(180),
        || {
            let targets = targets(ns)?;
            if targets.len() != 2 {
                return Err(format!("{} endpoints, upstream's has two", targets.len()));
            }
            let mut done = Vec::new();
            for t in &targets {
                let url = format!("{}://{}{}", t.scheme, t.addr, t.path);
                let resp = scrape(t, ca).map_err(|e| format!("{url}: {e}"))?;
                let status = resp.lines().next().unwrap_or_default();
                if !status.starts_with("HTTP/1.1 200") {
                    return Err(format!("{url}: {status}"));
                }
                if !resp.contains("\nfile_integrity_operator_") {
                    return Err(format!("{url}: no operator metrics in\n{resp}"));
                }
                done.push(url);
            }
            Ok(done)
        },
    )
}
