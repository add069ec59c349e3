//! The metrics endpoints, as upstream serves them: plain HTTP `/metrics` (port 8383) and HTTPS
//! `/metrics-fio` (port 8585, where `/metrics` is served too), each with `/healthz`.
//!
//! HTTPS uses the serving certificate (`tls.crt`/`tls.key` in the certificate directory, as
//! OpenShift's service CA mounts it), TLS 1.2+, HTTP/1.1, and reloads it when the files change
//! (the service CA rotates it). When the certificate is not there at start, the HTTPS port is
//! bound at once and served as soon as the certificate appears (looked for every
//! [`ServeOptions::cert_poll`]): upstream crash-looped while it was missing (CMP-3757), and an
//! endpoint left on plain HTTP until a restart would never be scraped over HTTPS.
//!
//! Over HTTPS the metrics paths need a bearer token the API server accepts for them
//! ([`Reviewer`]); `/healthz` does not. The plain-HTTP port is open, as upstream's: it serves
//! `/metrics` only, never `/metrics-fio`. Every connection has a deadline for its TLS handshake
//! and request headers and one for its whole life, and at most [`Limits::connections`] are served
//! at once per port (further ones wait in the listen backlog).

use std::convert::Infallible;
use std::net::SocketAddr;
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
    /// HTTPS (upstream: 8585).
    pub addr: SocketAddr,
    /// Plain HTTP `/metrics` (upstream: 8383); `None`: not served.
    pub plain_addr: Option<SocketAddr>,
    /// Directory with `tls.crt` and `tls.key` (upstream: `/var/run/secrets/serving-cert`).
    pub cert_dir: PathBuf,
    /// How often a certificate missing at start is looked for.
    pub cert_poll: Duration,
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

/// Where the endpoints listen.
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    /// The HTTPS port.
    pub addr: SocketAddr,
    /// The plain-HTTP port, when served.
    pub plain: Option<SocketAddr>,
    /// Whether the certificate was there at start (else HTTPS starts when it appears).
    pub tls: bool,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Bind and serve in the background until the process ends. Over HTTPS, `reviewer` decides who
/// may read the metrics (`None`: anyone who reaches the port, for tests without an API server).
/// A certificate that is there but cannot be loaded is an error naming the file.
pub async fn serve(
    metrics: Arc<Metrics>,
    opts: &ServeOptions,
    reviewer: Option<Reviewer>,
) -> Result<Serving, ServeError> {
    let crt = opts.cert_dir.join("tls.crt");
    let key = opts.cert_dir.join("tls.key");
    let certs = if crt.exists() || key.exists() {
        Some(Certs::load(&crt, &key)?)
    } else {
        None
    };
    let (listener, addr) = bind(opts.addr).await?;
    let plain = match opts.plain_addr {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let serving = Serving {
        addr,
        plain: plain.as_ref().map(|(_, a)| *a),
        tls: certs.is_some(),
    };
    if let Some((listener, bound)) = plain {
        tracing::info!("metrics on http://{bound}/metrics");
        tokio::spawn(accept(listener, metrics.clone(), None, None, opts.limits));
    }
    let limits = opts.limits;
    let poll = opts.cert_poll;
    let authn = if reviewer.is_some() {
        " (bearer token reviewed by the API server)"
    } else {
        ""
    };
    if certs.is_none() {
        tracing::warn!(
            "no serving certificate in {} yet: HTTPS metrics on {addr} start when it appears",
            opts.cert_dir.display()
        );
    }
    tokio::spawn(async move {
        let certs = match certs {
            Some(c) => c,
            None => wait_for_certificate(&crt, &key, poll).await,
        };
        tracing::info!("metrics on https://{addr}/metrics-fio{authn}");
        let certs = Arc::new(Mutex::new(certs));
        accept(listener, metrics, reviewer, Some(certs), limits).await;
    });
    Ok(serving)
}

/// Until both files are there and load.
async fn wait_for_certificate(crt: &Path, key: &Path, poll: Duration) -> Certs {
    let mut reported = None;
    loop {
        tokio::time::sleep(poll).await;
        if !(crt.exists() && key.exists()) {
            continue;
        }
        match Certs::load(crt, key) {
            Ok(c) => {
                tracing::info!("serving certificate {} appeared", crt.display());
                return c;
            }
            Err(e) => {
                let msg = e.to_string();
                if reported.as_ref() != Some(&msg) {
                    tracing::warn!("{msg}; waiting for a usable certificate");
                    reported = Some(msg);
                }
            }
        }
    }
}

/// Serves one port: TLS with `certs`, else plain HTTP (`/metrics` and `/healthz` only).
async fn accept(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    reviewer: Option<Reviewer>,
    certs: Option<Arc<Mutex<Certs>>>,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.connections.max(1)));
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
        let tls = certs.as_ref().map(|c| current_config(c));
        tokio::spawn(async move {
            let _slot = slot;
            let plain = tls.is_none();
            let service = hyper::service::service_fn(move |req| {
                let (metrics, reviewer) = (metrics.clone(), reviewer.clone());
                async move {
                    Ok::<_, Infallible>(respond(&metrics, plain, reviewer.as_ref(), &req).await)
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.handshake);
            let served = async {
                match tls {
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        match tokio::time::timeout(limits.handshake, acceptor.accept(stream)).await
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
}

async fn respond<B>(
    metrics: &Metrics,
    plain: bool,
    reviewer: Option<&Reviewer>,
    req: &Request<B>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let text = |status, body: &str| (status, "text/plain", body.to_owned());
    let (status, content_type, body) = match path {
        "/metrics" if plain => (StatusCode::OK, CONTENT_TYPE, metrics.encode()),
        "/metrics-fio" | "/metrics" if !plain => {
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
