//! The product image built without Nix (`scripts/image.py product`): minimal, configured from
//! nix/image.json (the file nix/image.nix reads), and reproducible: a second build from a copy
//! of the sources at another path, in a target directory of its own, gives the same digest.
//! The second build compiles the workspace again (~4 min on 2 cores; ~6 min on a fresh machine,
//! where it compiles every crate).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the image from the sources in `src` into `out`, in cargo target directory
/// `target_dir` (image.py's default when `None`: `static/` in the checkout's, or in
/// `CARGO_TARGET_DIR`); returns the printed digest.
fn build(src: &Path, out: &Path, target_dir: Option<&Path>) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(src.join("scripts/image.py"))
        .args(["product", "--tag", "e2e", "--out"])
        .arg(out);
    if let Some(dir) = target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .expect("run python3 scripts/image.py");
    assert!(
        status.success(),
        "scripts/image.py product in {}: {status}",
        src.display()
    );
    std::fs::read_to_string(out.join("file-integrity-operator.digest"))
        .expect("read the digest")
        .trim()
        .to_owned()
}

fn tar(args: &[&str], archive: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .args(args)
        .arg(archive)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn member(archive: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["-xOf"])
        .arg(archive)
        .arg(name)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "{name} not in {}", archive.display());
    out.stdout
}

fn blob(archive: &Path, digest: &Value) -> Vec<u8> {
    let d = digest
        .as_str()
        .expect("digest")
        .trim_start_matches("sha256:");
    member(archive, &format!("blobs/sha256/{d}"))
}

fn copy_sources(to: &Path) {
    for entry in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "tests",
        "benches",
        "deploy",
        "nix",
        "scripts",
        "testenv",
    ] {
        // -R without -p: the copies get new times, so cargo sees every workspace file changed.
        let status = Command::new("cp")
            .arg("-R")
            .arg(root().join(entry))
            .arg(to)
            .status()
            .expect("run cp");
        assert!(status.success(), "copy {entry}");
    }
}

#[test]
fn the_image_is_minimal_configured_from_image_json_and_reproducible() {
    let out1 = root().join("target/image");
    let digest1 = build(root(), &out1, None);
    let archive = out1.join("file-integrity-operator.oci.tar");

    // -- what is inside: the two binaries and /tmp, nothing else (no shell, no libc) ----------
    let index: Value = serde_json::from_slice(&member(&archive, "index.json")).unwrap();
    let manifest_ref = &index["manifests"][0];
    assert_eq!(
        manifest_ref["digest"].as_str(),
        Some(digest1.as_str()),
        "index.json names the printed digest"
    );
    assert_eq!(
        manifest_ref["annotations"]["io.containerd.image.name"],
        "quay.io/file-integrity-operator/file-integrity-operator:e2e"
    );
    let manifest: Value = serde_json::from_slice(&blob(&archive, &manifest_ref["digest"])).unwrap();
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer");
    let layer_dir = std::env::temp_dir().join(format!("fio-image-layer-{}", std::process::id()));
    std::fs::create_dir_all(&layer_dir).unwrap();
    let layer = layer_dir.join("layer.tar.gz");
    std::fs::write(&layer, blob(&archive, &layers[0]["digest"])).unwrap();
    let listing = String::from_utf8(tar(&["--numeric-owner", "-tvzf"], &layer)).unwrap();
    let entries: Vec<(String, String, String)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[f.len() - 1].to_owned())
        })
        .collect();
    // Static and musl: no program interpreter, no glibc ABI note (musl resolves host names
    // from /etc/resolv.conf and /etc/hosts itself; a static glibc cannot without NSS modules).
    for b in ["bin/fio-operator", "bin/fio-scanner"] {
        let out = Command::new("tar")
            .args(["-xzOf"])
            .arg(&layer)
            .arg(b)
            .output()
            .expect("run tar");
        assert!(out.status.success(), "{b} not in the layer");
        let elf = Elf(&out.stdout);
        assert!(!elf.has_interpreter(), "{b} is dynamically linked");
        assert!(!elf.has_gnu_abi_tag(), "{b} is linked with glibc, not musl");
    }
    let _ = std::fs::remove_dir_all(&layer_dir);
    let names: Vec<&str> = entries.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        names,
        ["bin/", "bin/fio-operator", "bin/fio-scanner", "tmp/"],
        "layer contents:\n{listing}"
    );
    for (mode, owner, name) in &entries {
        assert_eq!(owner, "0/0", "{name} owner");
        let want = match name.as_str() {
            "tmp/" => "drwxrwxrwt",
            "bin/" => "drwxr-xr-x",
            _ => "-rwxr-xr-x",
        };
        assert_eq!(mode, want, "{name} mode");
    }

    // -- its configuration is nix/image.json's ---------------------------------------------
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("nix/image.json")).unwrap())
            .unwrap();
    let config: Value =
        serde_json::from_slice(&blob(&archive, &manifest["config"]["digest"])).unwrap();
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], spec["entrypoint"]);
    assert_eq!(c["Cmd"], spec["cmd"]);
    assert_eq!(c["Env"], spec["env"]);
    assert_eq!(c["User"], spec["user"]);
    for (k, v) in spec["labels"].as_object().unwrap() {
        assert_eq!(&c["Labels"][k], v, "label {k}");
    }
    assert_eq!(
        c["Labels"]["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");

    // -- reproducible: the same digest from a copy elsewhere, in another target directory ----
    // The copy's files are new (copied without their times), so cargo compiles every crate of
    // the workspace again. Both places are fixed (under cargo's target tmp directory, not
    // per run): image.py's RUSTFLAGS name the sources' directory, and a fixed one lets the
    // second target directory, kept like the first, reuse the registry's crates it compiled
    // itself on an earlier run. On a fresh machine it compiles everything.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let copy = tmp.join("image-repro-src");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    copy_sources(&copy);
    let digest2 = build(
        &copy,
        &copy.join("target/image"),
        Some(&tmp.join("image-repro-target")),
    );
    let same = digest1 == digest2;
    if same {
        let _ = std::fs::remove_dir_all(&copy);
    }
    assert!(
        same,
        "two builds, two digests: {digest1} here, {digest2} in {} (kept)",
        copy.display()
    );
    eprintln!("image digest {digest1}, twice");
}

/// Just enough of a 64-bit little-endian ELF file to tell how it was linked.
struct Elf<'a>(&'a [u8]);

impl Elf<'_> {
    fn u16_at(&self, at: usize) -> usize {
        u16::from_le_bytes([self.0[at], self.0[at + 1]]) as usize
    }

    fn u32_at(&self, at: usize) -> usize {
        u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes")) as usize
    }

    fn u64_at(&self, at: usize) -> usize {
        u64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes")) as usize
    }

    /// (type, offset, size) of each program header.
    fn segments(&self) -> Vec<(usize, usize, usize)> {
        assert_eq!(&self.0[..5], b"\x7fELF\x02", "not a 64-bit ELF file");
        let (off, size, n) = (self.u64_at(0x20), self.u16_at(0x36), self.u16_at(0x38));
        (0..n)
            .map(|i| {
                let h = off + i * size;
                (self.u32_at(h), self.u64_at(h + 8), self.u64_at(h + 32))
            })
            .collect()
    }

    fn has_interpreter(&self) -> bool {
        self.segments().iter().any(|s| s.0 == 3) // PT_INTERP
    }

    /// An NT_GNU_ABI_TAG note ("GNU", type 1): what glibc's start files put in a program.
    fn has_gnu_abi_tag(&self) -> bool {
        let align4 = |n: usize| (n + 3) & !3;
        for (kind, off, size) in self.segments() {
            if kind != 4 {
                continue; // PT_NOTE
            }
            let mut at = off;
            while at + 12 <= off + size {
                let (namesz, descsz, ty) =
                    (self.u32_at(at), self.u32_at(at + 4), self.u32_at(at + 8));
                let name = &self.0[at + 12..at + 12 + namesz];
                if ty == 1 && name.starts_with(b"GNU") {
                    return true;
                }
                at += 12 + align4(namesz) + align4(descsz);
            }
        }
        false
    }
}
