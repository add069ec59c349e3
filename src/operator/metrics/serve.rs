//! The metrics endpoint: `/metrics-fio` (upstream's path) and `/metrics`, plus `/healthz`.
//!
//! With a serving certificate (`tls.crt`/`tls.key` in the certificate directory, as OpenShift's
//! service CA mounts it) the endpoint is HTTPS (TLS 1.2+, HTTP/1.1) on the configured address,
//! and the certificate is reloaded when the files change (the service CA rotates it). Without
//! one, metrics are served in plain HTTP, and only on loopback: a configured non-loopback
//! address is narrowed to 127.0.0.1 with a warning rather than exposing unauthenticated
//! plain text on the pod network. Upstream crash-looped while the certificate was missing
//! (CMP-3757); here a certificate that appears later is picked up by a restart of the pod.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use super::Metrics;

/// What the endpoint answers with (the encoder writes OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where to listen and where a serving certificate may be.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Directory with `tls.crt` and `tls.key` (upstream: `/var/run/secrets/serving-cert`).
    pub cert_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("metrics: listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics: serving certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
}

/// Where the endpoint listens and how.
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// Bind and serve in the background until the process ends.
pub async fn serve(metrics: Arc<Metrics>, opts: &ServeOptions) -> Result<Serving, ServeError> {
    let crt = opts.cert_dir.join("tls.crt");
    let key = opts.cert_dir.join("tls.key");
    let tls = if crt.exists() || key.exists() {
        let certs = Certs::load(&crt, &key)?;
        Some(Arc::new(Mutex::new(certs)))
    } else {
        None
    };
    let mut addr = opts.addr;
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "no serving certificate in {}: metrics in plain HTTP on loopback only",
            opts.cert_dir.display()
        );
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let serving = Serving {
        addr: bound,
        tls: tls.is_some(),
    };
    tracing::info!(
        "metrics on {}://{bound}/metrics-fio",
        if serving.tls { "https" } else { "http" }
    );
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("metrics: accepting a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            let tls = tls.as_ref().map(|t| current_config(t));
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(respond(&metrics, &req)) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                let r = match tls {
                    Some(config) => {
                        match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                            Ok(s) => http.serve_connection(TokioIo::new(s), service).await,
                            Err(e) => {
                                tracing::debug!("metrics: TLS handshake with {peer}: {e}");
                                return;
                            }
                        }
                    }
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                };
                if let Err(e) = r {
                    tracing::debug!("metrics: connection from {peer}: {e}");
                }
            });
        }
    });
    Ok(serving)
}

fn respond<B>(metrics: &Metrics, req: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/metrics-fio" | "/metrics" => (StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// The TLS configuration and the certificate files' modification times it was built from.
struct Certs {
    crt: PathBuf,
    key: PathBuf,
    stamp: (Option<SystemTime>, Option<SystemTime>),
    config: Arc<rustls::ServerConfig>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Certs {
    fn load(crt: &Path, key: &Path) -> Result<Certs, ServeError> {
        let bad = |path: &Path, reason: String| ServeError::Cert {
            path: path.to_owned(),
            reason,
        };
        let stamp = (mtime(crt), mtime(key));
        let chain = CertificateDer::pem_file_iter(crt)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(crt, e.to_string()))?;
        if chain.is_empty() {
            return Err(bad(crt, "no certificate in the file".into()));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(crt, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| bad(key, e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Certs {
            crt: crt.to_owned(),
            key: key.to_owned(),
            stamp,
            config: Arc::new(config),
        })
    }
}

/// The configuration to use for a new connection, reloaded first if the files changed. A
/// rotation that fails to load keeps the previous certificate.
fn current_config(certs: &Mutex<Certs>) -> Arc<rustls::ServerConfig> {
    let mut c = certs.lock().unwrap_or_else(|p| p.into_inner());
    if (mtime(&c.crt), mtime(&c.key)) != c.stamp {
        match Certs::load(&c.crt, &c.key) {
            Ok(new) => {
                tracing::info!("metrics: serving certificate {} reloaded", c.crt.display());
                *c = new;
            }
            Err(e) => tracing::warn!("{e}; keeping the previous certificate"),
        }
    }
    c.config.clone()
}
