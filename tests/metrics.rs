//! The operator's metrics endpoint as Prometheus (and an administrator with curl) sees it: HTTPS
//! with the mounted serving certificate, the certificate's rotation picked up without a restart,
//! plain HTTP only on loopback when no certificate is mounted, and a clear error for a broken
//! certificate. Certificates are made with the `openssl` command (installed by `.ci/run`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use fio_operator::metrics::{serve, Metrics, ServeOptions, CONTENT_TYPE};
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
fn issue(dir: &Path, ca: &str, out: &Path) {
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
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let mut args = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
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

fn client(ca: &Path) -> tokio_rustls::TlsConnector {
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

async fn exchange<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut s: S, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

async fn https_get(addr: std::net::SocketAddr, ca: &Path, path: &str) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = client(ca)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(exchange(tls, path).await)
}

#[tokio::test]
async fn https_with_the_serving_certificate_and_its_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("serving-cert");
    issue(tmp.path(), "ca1", &certs);
    let metrics = Arc::new(Metrics::new());
    metrics.phase("Active");
    let opts = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        cert_dir: certs.clone(),
    };
    let serving = serve(metrics.clone(), &opts).await.expect("serve");
    assert!(serving.tls);
    let ca1 = tmp.path().join("ca1.crt");

    let resp = https_get(serving.addr, &ca1, "/metrics-fio")
        .await
        .expect("HTTPS");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains(&format!("content-type: {CONTENT_TYPE}")),
        "{resp}"
    );
    assert!(
        resp.contains("file_integrity_operator_phase_total{phase=\"Active\"} 1"),
        "{resp}"
    );
    assert!(resp.trim_end().ends_with("# EOF"), "{resp}");
    let resp = https_get(serving.addr, &ca1, "/metrics").await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = https_get(serving.addr, &ca1, "/healthz").await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = https_get(serving.addr, &ca1, "/secrets").await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    // No plain text on the TLS port.
    let plain = exchange(
        TcpStream::connect(serving.addr).await.unwrap(),
        "/metrics-fio",
    )
    .await;
    assert!(!plain.contains("file_integrity_operator"), "{plain}");

    // The service CA rotates the certificate: new connections get the new one, no restart.
    let staged = tmp.path().join("staged");
    issue(tmp.path(), "ca2", &staged);
    let ca2 = tmp.path().join("ca2.crt");
    assert!(https_get(serving.addr, &ca2, "/metrics-fio").await.is_err());
    for f in ["tls.key", "tls.crt"] {
        std::fs::copy(staged.join(f), certs.join(f)).unwrap();
    }
    let resp = https_get(serving.addr, &ca2, "/metrics-fio")
        .await
        .expect("the rotated certificate is served");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(https_get(serving.addr, &ca1, "/metrics-fio").await.is_err());
}

#[tokio::test]
async fn without_a_certificate_plain_http_on_loopback_only() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOptions {
        addr: "0.0.0.0:0".parse().unwrap(),
        cert_dir: tmp.path().join("absent"),
    };
    let metrics = Arc::new(Metrics::new());
    metrics.set_failed("fi", "node-1", true);
    let serving = serve(metrics, &opts).await.expect("serve");
    assert!(!serving.tls);
    assert!(
        serving.addr.ip().is_loopback(),
        "plain HTTP must not listen on {}",
        serving.addr
    );
    let resp = exchange(
        TcpStream::connect(serving.addr).await.unwrap(),
        "/metrics-fio",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("# TYPE file_integrity_operator_node_failed gauge"),
        "{resp}"
    );
}

#[tokio::test]
async fn a_broken_certificate_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("serving-cert");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tls.crt"), "not a certificate\n").unwrap();
    std::fs::write(dir.join("tls.key"), "not a key\n").unwrap();
    let opts = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        cert_dir: dir.clone(),
    };
    let err = serve(Arc::new(Metrics::new()), &opts)
        .await
        .expect_err("a broken certificate must not be served");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.join("tls.crt").display().to_string()),
        "{msg}"
    );
}
