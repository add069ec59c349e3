//! Serving certificates for the metrics endpoint and an HTTPS client that trusts them, shared
//! by `tests/metrics.rs` and the end-to-end tests (`tests/operator/metrics.rs`). Certificates
//! are made with the `openssl` command (installed by `.ci/run`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA `<ca>.crt` and a serving certificate for `localhost` signed by it, written as
/// `<out>/tls.crt` and `<out>/tls.key` (as the service CA's Secret is mounted).
pub fn issue(dir: &Path, ca: &str, out: &Path) {
    issue_for(dir, ca, out, "localhost");
}

/// [`issue`] for the DNS name `name` (a Service's `<name>.<namespace>.svc`, as the service CA
/// issues them).
pub fn issue_for(dir: &Path, ca: &str, out: &Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509", "-days", "1", "-subj", "/CN=test-ca"];
    args.extend(ec);
    let (ca_key, ca_crt) = (format!("{ca}.key"), format!("{ca}.crt"));
    args.extend(["-keyout", &ca_key, "-out", &ca_crt]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("leaf.ext"),
        format!("subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"),
    )
    .unwrap();
    let subject = format!("/CN={name}");
    let mut args = vec![
        "req", "-subj", &subject, "-keyout", "leaf.key", "-out", "leaf.csr",
    ];
    args.extend(ec);
    openssl(dir, &args);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
    );
    std::fs::create_dir_all(out).unwrap();
    // Key first: the server reloads when either file changes and must find a matching pair.
    std::fs::copy(dir.join("leaf.key"), out.join("tls.key")).unwrap();
    std::fs::copy(dir.join("leaf.crt"), out.join("tls.crt")).unwrap();
}

pub fn client(ca: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("CA certificate"))
        .expect("add the CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `GET path` on `s` (with `Authorization: Bearer <token>` when given); the whole response.
pub async fn exchange<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    mut s: S,
    path: &str,
    token: Option<&str>,
) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// [`exchange`] over TLS, trusting the CA certificate `ca` for `localhost`.
pub async fn https_get(
    addr: std::net::SocketAddr,
    ca: &Path,
    path: &str,
    token: Option<&str>,
) -> Result<String, String> {
    https_get_as(addr, ca, "localhost", path, token).await
}

/// [`https_get`] verifying the server as `server_name` (a ServiceMonitor's `tlsConfig.serverName`).
pub async fn https_get_as(
    addr: std::net::SocketAddr,
    ca: &Path,
    server_name: &str,
    path: &str,
    token: Option<&str>,
) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let tls = client(ca)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(exchange(tls, path, token).await)
}

/// `clients` tasks scrape `/metrics-fio` over HTTPS without a pause while the certificate in
/// `cert_dir` is replaced by the one in `staged` (signed by `new_ca`), as the service CA rotates
/// it under Prometheus. Every scrape must succeed with the old or the new certificate (a panic
/// otherwise); returns how many did with each.
pub async fn scrape_through_rotation(
    addr: std::net::SocketAddr,
    (old_ca, new_ca): (&Path, &Path),
    token: Option<&str>,
    staged: &Path,
    cert_dir: &Path,
) -> (usize, usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    let stop = Arc::new(AtomicBool::new(false));
    let mut scrapers = Vec::new();
    for _ in 0..3 {
        let stop = stop.clone();
        let (old_ca, new_ca) = (old_ca.to_path_buf(), new_ca.to_path_buf());
        let token = token.map(str::to_owned);
        scrapers.push(tokio::spawn(async move {
            let (mut old, mut new) = (0, 0);
            let token = token.as_deref();
            while !stop.load(Ordering::Relaxed) {
                match https_get(addr, &old_ca, "/metrics-fio", token).await {
                    Ok(r) if r.starts_with("HTTP/1.1 200") => old += 1,
                    _ => match https_get(addr, &new_ca, "/metrics-fio", token).await {
                        Ok(r) if r.starts_with("HTTP/1.1 200") => new += 1,
                        other => panic!("a scrape failed during the rotation: {other:?}"),
                    },
                }
            }
            (old, new)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    for f in ["tls.key", "tls.crt"] {
        std::fs::copy(staged.join(f), cert_dir.join(f)).expect("rotate the certificate");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut old, mut new) = (0, 0);
    for s in scrapers {
        let (o, n) = s.await.expect("a scraper panicked");
        old += o;
        new += n;
    }
    (old, new)
}
