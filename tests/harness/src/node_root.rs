//! Node roots: the small host tree of a simulated node.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

// ---- Node roots ---------------------------------------------------------------------------------

/// A small host tree for `node` at `<parent>/<node>` (created; returned), covering every rule of
/// the operator's default configuration: `etc/` (resolv.conf, hosts, hostname, an ssh config, an
/// empty `etc/kubernetes/` where the daemon keeps `aide.db.gz`), `usr/bin/` and `usr/lib/`,
/// `boot/`, `root/` (with an excluded `.kube/`).
pub fn sample_node_root(parent: &Path, node: &str) -> PathBuf {
    let root = parent.join(node);
    let file = |rel: &str, text: &str, mode: u32| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("a file has a parent"))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    };
    file(
        "etc/resolv.conf",
        "search cluster.local\nnameserver 10.0.0.10\n",
        0o644,
    );
    file(
        "etc/hosts",
        &format!("127.0.0.1 localhost\n::1 localhost\n10.1.0.2 {node}\n"),
        0o644,
    );
    file("etc/hostname", &format!("{node}\n"), 0o644);
    file(
        "etc/ssh/sshd_config",
        "PermitRootLogin no\nPasswordAuthentication no\n",
        0o600,
    );
    file(
        "usr/bin/kubelet",
        "#!/bin/sh\necho 'kubelet (simulated)'\n",
        0o755,
    );
    file(
        "usr/bin/crio",
        "#!/bin/sh\necho 'crio (simulated)'\n",
        0o755,
    );
    file("usr/bin/sh", "#!/bin/true\n", 0o755);
    file(
        "usr/lib/os-release",
        "NAME=\"Simulated CoreOS\"\nID=rhcos\n",
        0o644,
    );
    file("boot/vmlinuz-6.1.0", "not a kernel\n", 0o644);
    file(
        "boot/loader/entries/ostree-1.conf",
        "title Simulated\nlinux /vmlinuz-6.1.0\n",
        0o644,
    );
    file("root/.bashrc", "alias ll='ls -l'\n", 0o644);
    file(
        "root/.kube/config",
        "# excluded by the default rules\n",
        0o600,
    );
    fs::create_dir_all(root.join("etc/kubernetes"))
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    root
}
