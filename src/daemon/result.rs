//! What one scan on a node reports to the cluster: the condition, the counts, and the report
//! text packed to fit a ConfigMap (as upstream: gzip+base64 above the limit, a placeholder
//! when even that is too big).

use base64::Engine;
use std::io::Write;

/// Upstream's `configMapMaxSize`: a little under the 1 MiB ConfigMap limit.
pub const CONFIGMAP_MAX: usize = 1_048_570;

/// The outcome of one scan, as a FileIntegrityNodeStatus condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    Succeeded,
    Failed {
        added: usize,
        removed: usize,
        changed: usize,
        log: Vec<u8>,
    },
    Errored {
        message: String,
    },
}

impl ScanResult {
    pub fn condition(&self) -> &'static str {
        match self {
            ScanResult::Succeeded => "Succeeded",
            ScanResult::Failed { .. } => "Failed",
            ScanResult::Errored { .. } => "Errored",
        }
    }
}

/// AIDE's message for an error exit code (upstream `GetAideErrorMessage`).
pub fn aide_error_message(code: i32) -> &'static str {
    match code {
        14 => "Error writing error",
        15 => "Invalid argument error",
        16 => "Unimplemented function error",
        17 => "Invalid configureline error",
        18 => "IO error",
        19 => "Version mismatch error",
        21 => "File lock error",
        _ => "Unexpected error",
    }
}

/// The `integritylog` data of a result ConfigMap and whether it is compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPayload {
    pub data: String,
    pub compressed: bool,
}

/// Pack a report for a ConfigMap: as text when it fits (and `force_compress` is off), else gzip
/// and base64; if even that is too large, a placeholder that tells the admin where the full log
/// is on the node.
pub fn pack_log(log: &[u8], node: &str, force_compress: bool) -> LogPayload {
    if log.len() <= CONFIGMAP_MAX && !force_compress {
        return LogPayload {
            data: String::from_utf8_lossy(log).into_owned(),
            compressed: false,
        };
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(log);
    let zipped = gz.finish().unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&zipped);
    if encoded.len() <= CONFIGMAP_MAX {
        return LogPayload {
            data: encoded,
            compressed: true,
        };
    }
    LogPayload {
        data: format!(
            "compressed, encoded AIDE log is too large for a configMap ({}) - fetch it from /etc/kubernetes/aide.log on node {node}",
            encoded.len()
        ),
        compressed: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn small_logs_stay_text_large_ones_are_gzip_base64() {
        let small = b"AIDE found differences between database and filesystem!!\n";
        let p = pack_log(small, "node-1", false);
        assert_eq!((p.data.as_bytes(), p.compressed), (&small[..], false));

        // 10,000 added entries, as upstream's e2e test: well over 1 MiB of report.
        let mut big = Vec::new();
        for i in 0..20_000 {
            big.extend_from_slice(
                format!(
                    "f+++++++++++++++++: /hostroot/etc/addedbytest{i}.{}\n",
                    "x".repeat(40)
                )
                .as_bytes(),
            );
        }
        assert!(big.len() > CONFIGMAP_MAX);
        let p = pack_log(&big, "node-1", false);
        assert!(p.compressed && p.data.len() <= CONFIGMAP_MAX);
        let zipped = base64::engine::general_purpose::STANDARD
            .decode(&p.data)
            .unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, big);
    }

    #[test]
    fn incompressible_huge_logs_become_a_placeholder() {
        // Random-looking bytes do not compress: 2 MiB of them cannot fit even gzip'd.
        let mut x: u64 = 88172645463325252;
        let noise: Vec<u8> = (0..2 * 1024 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let p = pack_log(&noise, "node-2", false);
        assert!(p.compressed);
        assert!(
            p.data
                .contains("fetch it from /etc/kubernetes/aide.log on node node-2"),
            "{}",
            p.data
        );
    }
}
