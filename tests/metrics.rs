//! The operator's metrics endpoint as Prometheus (and an administrator with curl) sees it: HTTPS
//! with the mounted serving certificate, the certificate's rotation picked up without a restart,
//! plain HTTP only on loopback when no certificate is mounted, and a clear error for a broken
//! certificate, and the limits a client cannot exceed (handshake deadline, connection cap). Who
//! may read them over HTTPS (token and access reviews) needs the API server: it is tested in
//! `tests/operator/metrics.rs`.

#[path = "cluster/tls.rs"]
mod tls;

use std::sync::Arc;
use std::time::Duration;

use fio_operator::metrics::{serve, Limits, Metrics, ServeOptions, CONTENT_TYPE};
use tls::{exchange, https_get, issue};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

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
        limits: Limits::default(),
    };
    let serving = serve(metrics.clone(), &opts, None).await.expect("serve");
    assert!(serving.tls);
    let ca1 = tmp.path().join("ca1.crt");

    let resp = https_get(serving.addr, &ca1, "/metrics-fio", None)
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
    let resp = https_get(serving.addr, &ca1, "/metrics", None)
        .await
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = https_get(serving.addr, &ca1, "/healthz", None)
        .await
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = https_get(serving.addr, &ca1, "/secrets", None)
        .await
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    // No plain text on the TLS port.
    let plain = exchange(
        TcpStream::connect(serving.addr).await.unwrap(),
        "/metrics-fio",
        None,
    )
    .await;
    assert!(!plain.contains("file_integrity_operator"), "{plain}");

    // The service CA rotates the certificate: new connections get the new one, no restart.
    let staged = tmp.path().join("staged");
    issue(tmp.path(), "ca2", &staged);
    let ca2 = tmp.path().join("ca2.crt");
    assert!(https_get(serving.addr, &ca2, "/metrics-fio", None)
        .await
        .is_err());
    for f in ["tls.key", "tls.crt"] {
        std::fs::copy(staged.join(f), certs.join(f)).unwrap();
    }
    let resp = https_get(serving.addr, &ca2, "/metrics-fio", None)
        .await
        .expect("the rotated certificate is served");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(https_get(serving.addr, &ca1, "/metrics-fio", None)
        .await
        .is_err());
}

#[tokio::test]
async fn without_a_certificate_plain_http_on_loopback_only() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ServeOptions {
        addr: "0.0.0.0:0".parse().unwrap(),
        cert_dir: tmp.path().join("absent"),
        limits: Limits::default(),
    };
    let metrics = Arc::new(Metrics::new());
    metrics.set_failed("fi", "node-1", true);
    let serving = serve(metrics, &opts, None).await.expect("serve");
    assert!(!serving.tls);
    assert!(
        serving.addr.ip().is_loopback(),
        "plain HTTP must not listen on {}",
        serving.addr
    );
    let resp = exchange(
        TcpStream::connect(serving.addr).await.unwrap(),
        "/metrics-fio",
        None,
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
        limits: Limits::default(),
    };
    let err = serve(Arc::new(Metrics::new()), &opts, None)
        .await
        .expect_err("a broken certificate must not be served");
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.join("tls.crt").display().to_string()),
        "{msg}"
    );
}

/// A client that connects and sends nothing is cut off after the handshake deadline, and while
/// the connection cap is taken by such clients a new one is not served; once they are cut off,
/// it is.
#[tokio::test]
async fn idle_clients_are_cut_off_and_cannot_exceed_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("serving-cert");
    issue(tmp.path(), "ca", &certs);
    let ca = tmp.path().join("ca.crt");
    let opts = ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        cert_dir: certs,
        limits: Limits {
            handshake: Duration::from_secs(2),
            connection: Duration::from_secs(30),
            connections: 2,
        },
    };
    let serving = serve(Arc::new(Metrics::new()), &opts, None)
        .await
        .expect("serve");
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(serving.addr).await.expect("connect"));
    }
    // Give the server the moment to accept both.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let blocked = tokio::time::timeout(
        Duration::from_millis(1000),
        https_get(serving.addr, &ca, "/metrics-fio", None),
    )
    .await;
    assert!(
        blocked.is_err(),
        "a third client was served while two held the cap: {blocked:?}"
    );
    for mut s in idle {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the idle connection is closed by the server");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }
    let resp = https_get(serving.addr, &ca, "/metrics-fio", None)
        .await
        .expect("served once the idle clients are gone");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}
