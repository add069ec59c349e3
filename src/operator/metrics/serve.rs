//! The metrics endpoint: `/metrics-fio` (upstream's path) and `/metrics`, plus `/healthz`.
//!
//! With a serving certificate (`tls.crt`/`tls.key` in the certificate directory, as OpenShift's
//! service CA mounts it) the endpoint is HTTPS (TLS 1.2+, HTTP/1.1) on the configured address,
//! and the certificate is reloaded when the files change (the service CA rotates it). Without
//! one, metrics are served in plain HTTP, and only on loopback: a configured non-loopback
//! address is narrowed to 127.0.0.1 with a warning rather than exposing unauthenticated
//! plain text on the pod network. Upstream crash-looped while the certificate was missing
//! (CMP-3757); here a certificate that appears later is picked up by a restart of the pod.
//!
//! Over HTTPS the metrics paths need a bearer token the API server accepts for them
//! ([`Reviewer`]); `/healthz` does not. The plain-HTTP loopback fallback is open: only processes
//! in the pod's network namespace reach it. Every connection has a deadline for its TLS
//! handshake and request headers and one for its whole life, and at most
//! [`Limits::connections`] are served at once (further ones wait in the listen backlog).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::access::{Reviewer, Verdict};
use super::Metrics;

/// What the endpoint answers with (the encoder writes OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where to listen and where a serving certificate may be.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Directory with `tls.crt` and `tls.key` (upstream: `/var/run/secrets/serving-cert`).
    pub cert_dir: PathBuf,
    pub limits: Limits,
}

/// What one client can hold of the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the TLS handshake, then again for the request headers.
    pub handshake: Duration,
    /// For a connection's whole life (keep-alive included).
    pub connection: Duration,
    /// Connections served at once.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            handshake: Duration::from_secs(10),
            connection: Duration::from_secs(60),
            connections: 64,
        }
    }
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

/// Bind and serve in the background until the process ends. Over HTTPS, `reviewer` decides who
/// may read the metrics (`None`: anyone who reaches the port, for tests without an API server).
pub async fn serve(
    metrics: Arc<Metrics>,
    opts: &ServeOptions,
    reviewer: Option<Reviewer>,
) -> Result<Serving, ServeError> {
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
        "metrics on {}://{bound}/metrics-fio{}",
        if serving.tls { "https" } else { "http" },
        if serving.tls && reviewer.is_some() {
            " (bearer token reviewed by the API server)"
        } else {
            ""
        }
    );
    // The loopback fallback is open; over TLS the reviewer (if any) decides.
    let reviewer = reviewer.filter(|_| serving.tls);
    let limits = opts.limits;
    let slots = Arc::new(Semaphore::new(limits.connections.max(1)));
    tokio::spawn(async move {
        loop {
            // Waiting for a slot before accepting leaves further clients in the backlog.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("metrics: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            let reviewer = reviewer.clone();
            let tls = tls.as_ref().map(|t| current_config(t));
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let (metrics, reviewer) = (metrics.clone(), reviewer.clone());
                    async move { Ok::<_, Infallible>(respond(&metrics, reviewer.as_ref(), &req).await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(limits.handshake);
                let served = async {
                    match tls {
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            match tokio::time::timeout(limits.handshake, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), service).await,
                                Ok(Err(e)) => {
                                    tracing::debug!("metrics: TLS handshake with {peer}: {e}");
                                    Ok(())
                                }
                                Err(_) => {
                                    tracing::debug!("metrics: TLS handshake with {peer} timed out");
                                    Ok(())
                                }
                            }
                        }
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                    }
                };
                match tokio::time::timeout(limits.connection, served).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!("metrics: connection from {peer}: {e}"),
                    Err(_) => {
                        tracing::debug!("metrics: connection from {peer} reached its deadline")
                    }
                }
            });
        }
    });
    Ok(serving)
}

async fn respond<B>(
    metrics: &Metrics,
    reviewer: Option<&Reviewer>,
    req: &Request<B>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let text = |status, body: &str| (status, "text/plain", body.to_owned());
    let (status, content_type, body) = match path {
        "/metrics-fio" | "/metrics" => {
            let verdict = match reviewer {
                None => Verdict::Allowed,
                Some(r) => {
                    let auth = req.headers().get(hyper::header::AUTHORIZATION);
                    r.review(auth.map(|v| v.as_bytes()), path).await
                }
            };
            match verdict {
                Verdict::Allowed => (StatusCode::OK, CONTENT_TYPE, metrics.encode()),
                Verdict::Unauthenticated => text(StatusCode::UNAUTHORIZED, "Unauthorized\n"),
                Verdict::Forbidden => text(StatusCode::FORBIDDEN, "Forbidden\n"),
                Verdict::Unavailable => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the API server could not review the token\n",
                ),
            }
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
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
