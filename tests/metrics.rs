//! The operator's metrics endpoints as Prometheus (and an administrator with curl) sees them:
//! HTTPS with the mounted serving certificate, its rotation picked up without a restart while
//! clients keep scraping, plain-HTTP `/metrics` beside it (upstream's port 8383), HTTPS starting
//! when a certificate missing at start appears, a clear error for a broken certificate, and the
//! limits a client cannot exceed (handshake deadline, connection cap). Who may read them over
//! HTTPS (token and access reviews) needs the API server: it is tested in
//! `tests/operator/metrics.rs`.

use fio_harness::tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fio_operator::metrics::{serve, Limits, Metrics, ServeOptions, CONTENT_TYPE};
use tls::{exchange, https_get, issue, scrape_through_rotation};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn options(cert_dir: PathBuf) -> ServeOptions {
    ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        plain_addr: Some("127.0.0.1:0".parse().unwrap()),
        cert_dir,
        cert_poll: Duration::from_millis(100),
        limits: Limits::default(),
    }
}

async fn plain_get(addr: std::net::SocketAddr, path: &str) -> String {
    exchange(TcpStream::connect(addr).await.unwrap(), path, None).await
}

#[tokio::test]
async fn https_with_the_serving_certificate_and_its_rotation_under_load() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("serving-cert");
    issue(tmp.path(), "ca1", &certs);
    let metrics = Arc::new(Metrics::new());
    metrics.phase("Active");
    let serving = serve(metrics.clone(), &options(certs.clone()), None)
        .await
        .expect("serve");
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
    for (path, want) in [
        ("/metrics", "200"),
        ("/healthz", "200"),
        ("/secrets", "404"),
    ] {
        let resp = https_get(serving.addr, &ca1, path, None).await.unwrap();
        assert!(
            resp.starts_with(&format!("HTTP/1.1 {want}")),
            "{path}: {resp}"
        );
    }
    // No plain text on the TLS port.
    let plain = plain_get(serving.addr, "/metrics-fio").await;
    assert!(!plain.contains("file_integrity_operator"), "{plain}");

    // The service CA rotates the certificate while three clients scrape without a pause: every
    // scrape succeeds with the old or the new certificate, none fails, and afterwards new
    // connections get the new one, without a restart.
    let staged = tmp.path().join("staged");
    issue(tmp.path(), "ca2", &staged);
    let ca2 = tmp.path().join("ca2.crt");
    assert!(https_get(serving.addr, &ca2, "/metrics-fio", None)
        .await
        .is_err());
    let (old, new) =
        scrape_through_rotation(serving.addr, (&ca1, &ca2), None, &staged, &certs).await;
    assert!(
        old > 0 && new > 0,
        "scrapes before/after the rotation: {old}/{new}"
    );
    let resp = https_get(serving.addr, &ca2, "/metrics-fio", None)
        .await
        .expect("the rotated certificate is served");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(https_get(serving.addr, &ca1, "/metrics-fio", None)
        .await
        .is_err());
}

/// Plain-HTTP `/metrics` is served from the start (upstream's port 8383, open); `/metrics-fio`
/// never in plain text. With no certificate at start, the HTTPS port is bound and starts serving
/// when the certificate appears (the service CA writes it a little after the pod starts).
#[tokio::test]
async fn plain_metrics_at_once_and_https_when_the_certificate_appears() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("serving-cert");
    let metrics = Arc::new(Metrics::new());
    metrics.set_failed("fi", "node-1", true);
    metrics.leader("file-integrity-operator-lock", true);
    metrics.reconcile_started("results");
    metrics.reconciled("results", Duration::from_millis(5), None);
    let serving = serve(metrics, &options(certs.clone()), None)
        .await
        .expect("serve");
    assert!(!serving.tls);
    let plain = serving.plain.expect("the plain port");
    let resp = plain_get(plain, "/metrics").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("# TYPE file_integrity_operator_node_failed gauge"),
        "{resp}"
    );
    // The runtime's figures, under the names upstream's 8383 serves them (generic operator
    // dashboards read these): leader status, reconciles by controller, this process.
    for line in [
        "leader_election_master_status{name=\"file-integrity-operator-lock\"} 1",
        "controller_runtime_reconcile_total{controller=\"results\",result=\"success\"} 1",
        "controller_runtime_active_workers{controller=\"results\"} 0",
    ] {
        assert!(resp.lines().any(|l| l == line), "{line} not in {resp}");
    }
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            resp.lines().any(|l| l.starts_with(&format!("{family} "))),
            "{family} not in {resp}"
        );
    }
    let resp = plain_get(plain, "/metrics-fio").await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    assert!(plain_get(plain, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));

    // The certificate appears (written by the service CA): HTTPS answers, no restart.
    let staged = tmp.path().join("staged");
    issue(tmp.path(), "ca", &staged);
    std::fs::create_dir_all(&certs).unwrap();
    for f in ["tls.key", "tls.crt"] {
        std::fs::copy(staged.join(f), certs.join(f)).unwrap();
    }
    let ca = tmp.path().join("ca.crt");
    let resp = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match https_get(serving.addr, &ca, "/metrics-fio", None).await {
                Ok(r) => return r,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("HTTPS within 10 s of the certificate");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("file_integrity_operator_node_failed"),
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
    let err = serve(Arc::new(Metrics::new()), &options(dir.clone()), None)
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
        limits: Limits {
            handshake: Duration::from_secs(2),
            connection: Duration::from_secs(30),
            connections: 2,
        },
        ..options(certs)
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
