#!/usr/bin/env python3
"""Build the product's OCI image (and the test nodes' pause image) without Nix, reproducibly.

    scripts/image.py product [--out DIR] [--tag TAG] [--version V] [--target-dir DIR]
    scripts/image.py pause   [--out DIR]
    scripts/image.py writer  [--out DIR]
    scripts/image.py olm     --bin DIR [--out DIR]

`product`: fio-operator and fio-scanner built static with musl (as nix/package.nix builds them:
host names resolve without NSS), stripped, with source paths remapped so that the checkout's location does not
reach the binaries; one layer with /bin/<binaries> and /tmp, the entrypoint, user and labels of
nix/image.json, the configuration nix/image.nix reads too. `pause`: testenv/pause/pause.rs, the
sandbox image of the real test nodes (scripts/realnodes.sh). `writer`: testenv/writer/writer.rs,
a pod of the real-node tests that appends to a host file (the realtime writer named). `olm`: the two images of OLM's
bundle-unpack Jobs on the real test nodes (scripts/testenv-olm.sh), from the Go-built binaries in
DIR (scripts/testenv.sh olm-bin): opm's, and the util image (cpb, and testenv/olm-util/cp.rs).

Each writes DIR/<image>.oci.tar (default DIR: target/image): an OCI image layout archive that
`ctr images import` and `docker load` read (index.json carries the full name, manifest.json the
docker form), and DIR/<image>.digest, the manifest's sha256. Every byte is fixed by the inputs:
entries sorted, owner 0:0, mtime 0, gzip without name or time, `created` at the epoch. Python's
standard library only.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EPOCH = "1970-01-01T00:00:00Z"
PAUSE_NAME = "localhost/fio-testenv/pause"
PAUSE_TAG = "1"
WRITER_IMAGE = "localhost/fio-testenv/writer:1"
# scripts/testenv-olm.sh passes these to the catalog-operator.
OLM_UTIL_IMAGE = "localhost/fio-testenv/olm-util:1"
OLM_OPM_IMAGE = "localhost/fio-testenv/opm:1"


def fail(msg):
    print(f"image.py: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd, env=None):
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def workspace_version():
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


def host_target():
    out = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line[len("host: "):]
    fail("rustc -vV names no host target")


def musl_target():
    """This machine's architecture with musl (`rustup target add <it>`, and musl-gcc for the C
    code of ring: Debian's musl-tools; .ci/run installs both)."""
    arch = host_target().split("-", 1)[0]
    target = f"{arch}-unknown-linux-musl"
    installed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True,
                               text=True)
    if installed.returncode == 0 and target not in installed.stdout.split():
        fail(f"the Rust target {target} is not installed: rustup target add {target}")
    if not shutil.which("musl-gcc"):
        fail("musl-gcc not found: install Debian's musl-tools (ring's C code is built with it)")
    return target


def build_env():
    """The environment of the static build. Variables that cargo sets for the process running a
    test (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...) are removed: build scripts (ring's) track some of
    them, and a build from a test after one from a shell would otherwise recompile from ring up."""
    cargo_set = ("CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_CFG_",
                 "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(cargo_set)}
    env["RUSTFLAGS"] = " ".join(static_rustflags())
    return env


def static_rustflags():
    # crt-static: no libc to ship; strip: no symbols; remapped paths: the same bytes from any
    # checkout and any CARGO_HOME (panic messages name files).
    cargo_home = os.environ.get("CARGO_HOME", str(Path.home() / ".cargo"))
    return [
        "-C", "target-feature=+crt-static",
        "-C", "strip=symbols",
        f"--remap-path-prefix={ROOT}=/src",
        f"--remap-path-prefix={cargo_home}=/cargo",
    ]


def tar_entry(tar, name, mode, data=None):
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def layer(files, dirs):
    """files: {path: (mode, bytes)}, dirs: {path: mode} -> (tar bytes, gzip bytes)."""
    entries = {p: (m, None) for p, m in dirs.items()}
    for path, (mode, data) in files.items():
        parent = str(Path(path).parent)
        while parent not in (".", "/"):
            entries.setdefault(parent, (0o755, None))
            parent = str(Path(parent).parent)
        entries[path] = (mode, data)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(entries):
            mode, data = entries[path]
            tar_entry(tar, path + ("/" if data is None else ""), mode, data)
    raw = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, compresslevel=9, mtime=0) as g:
        g.write(raw)
    return raw, gz.getvalue()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_image(out, file_stem, name, tag, files, dirs, config, created=EPOCH):
    raw, gz = layer(files, dirs)
    image_config = canonical({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
        "history": [{"created": created, "created_by": "scripts/image.py"}],
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(image_config),
            "size": len(image_config),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha256(gz),
            "size": len(gz),
        }],
    })
    digest = sha256(manifest)
    ref = f"{name}:{tag}"
    index = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": len(manifest),
            "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
        }],
    })
    blob = lambda data: "blobs/sha256/" + hashlib.sha256(data).hexdigest()
    docker_manifest = canonical([{"Config": blob(image_config), "RepoTags": [ref], "Layers": [blob(gz)]}])
    members = {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
        "manifest.json": docker_manifest,
        blob(image_config): image_config,
        blob(manifest): manifest,
        blob(gz): gz,
    }
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{file_stem}.oci.tar"
    tmp = archive.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            tar_entry(tar, d + "/", 0o755)
        for path in sorted(members):
            tar_entry(tar, path, 0o644, members[path])
    os.replace(tmp, archive)
    (out / f"{file_stem}.digest").write_text(digest + "\n")
    listing = ", ".join(f"/{p} ({len(d)} B)" for p, (_, d) in sorted(files.items()))
    print(f"{ref} {digest} {archive} ({archive.stat().st_size} B; layer {len(gz)} B gzip, "
          f"{len(raw)} B tar: {listing}, {', '.join('/' + d for d in sorted(dirs))})")
    return digest


def product_spec():
    """nix/image.json: the product image's layout and configuration, shared with nix/image.nix."""
    return json.loads((ROOT / "nix" / "image.json").read_text())


def product_config(spec, version):
    """The image configuration's `config` (what nix/image.nix gives dockerTools too)."""
    labels = dict(spec["labels"], **{"org.opencontainers.image.version": version})
    return {"Entrypoint": spec["entrypoint"], "Cmd": spec["cmd"], "Env": spec["env"],
            "User": spec["user"], "Labels": labels}


# Cargo.toml's profile of what ships (thin LTO), as nix/package.nix's `buildType`.
PROFILE = "dist"


def default_target_dir():
    """`static/` in cargo's target directory: target/static, or under CARGO_TARGET_DIR when that is
    set (as .ci/run does, to keep compiled dependencies between runs). The image does not depend
    on it: tests/image.rs builds again in another directory and compares digests."""
    base = os.environ.get("CARGO_TARGET_DIR")
    return (Path(base).resolve() if base else ROOT / "target") / "static"


def cmd_product(args):
    spec = product_spec()
    version = args.version or workspace_version()
    # musl, as nix/package.nix's: a static glibc cannot resolve host names (no NSS modules in
    # the image); musl reads /etc/resolv.conf and /etc/hosts itself.
    target = musl_target()
    env = build_env()
    cmd = ["cargo", "build", "--profile", PROFILE, "--locked", "--target", target]
    for b in spec["binaries"]:
        cmd += ["--bin", b]
    target_dir = Path(args.target_dir).resolve() if args.target_dir else default_target_dir()
    cmd += ["--target-dir", str(target_dir)]
    run(cmd, env)
    files = {}
    for b in spec["binaries"]:
        data = (target_dir / target / PROFILE / b).read_bytes()
        files[f"{spec['binDir']}/{b}"] = (0o755, data)
    dirs = {d["path"]: int(d["mode"], 8) for d in spec["directories"]}
    config = product_config(spec, version)
    write_image(Path(args.out), "file-integrity-operator", spec["name"], args.tag or version,
                files, dirs, config, created=spec["created"])


def rustc_one(source, binary):
    """A one-file, std-only test program built static (no crate: rustc alone, in a second)."""
    run(["rustc", "--edition", "2021", "-O", *static_rustflags(), "-o", str(binary),
         str(ROOT / source)], build_env())
    return binary.read_bytes()


def cmd_pause(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = out / "pause"
    files = {"pause": (0o755, rustc_one("testenv/pause/pause.rs", binary))}
    config = {"Entrypoint": ["/pause"], "User": "65535:65535"}
    write_image(out, "pause", PAUSE_NAME, PAUSE_TAG, files, {}, config)


def cmd_writer(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = out / "writer"
    data = rustc_one("testenv/writer/writer.rs", binary)
    name, tag = WRITER_IMAGE.rsplit(":", 1)
    write_image(out, "writer", name, tag, {"writer": (0o755, data)}, {},
                {"Entrypoint": ["/writer"], "User": "0:0"})
    binary.unlink()


def cmd_olm(args):
    out, bindir = Path(args.out), Path(args.bin)
    out.mkdir(parents=True, exist_ok=True)
    cp = out / "cp"
    rustc_one("testenv/olm-util/cp.rs", cp)
    binary = lambda p: (0o755, Path(p).read_bytes())
    user = "65532:65532"
    name, tag = OLM_UTIL_IMAGE.rsplit(":", 1)
    write_image(out, "olm-util", name, tag, {"bin/cp": binary(cp), "bin/cpb": binary(bindir / "cpb")}, {},
                {"Env": ["PATH=/bin"], "User": user})
    name, tag = OLM_OPM_IMAGE.rsplit(":", 1)
    write_image(out, "opm", name, tag, {"bin/opm": binary(bindir / "opm")}, {"tmp": 0o1777},
                {"Entrypoint": ["/bin/opm"], "Env": ["PATH=/bin"], "User": user})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    prod = sub.add_parser("product", help="the operator/scanner image")
    prod.add_argument("--tag", help="image tag (default: the version)")
    prod.add_argument("--version", help="the version label (default: the workspace version; the "
                      "OLM test builds the next version's image, which differs by it alone)")
    prod.add_argument("--target-dir",
                      help="cargo target directory (default: target/static, or "
                      "$CARGO_TARGET_DIR/static)")
    pause = sub.add_parser("pause", help="the real test nodes' sandbox image")
    writer = sub.add_parser("writer", help="the real node tests' pod that writes a host file")
    olm = sub.add_parser("olm", help="the images of OLM's bundle-unpack Jobs on the test nodes")
    olm.add_argument("--bin", required=True, help="OLM's binaries (scripts/testenv.sh olm-bin)")
    for s in (prod, pause, writer, olm):
        s.add_argument("--out", default=str(ROOT / "target" / "image"), help="output directory")
    args = p.parse_args()
    try:
        {"product": cmd_product, "pause": cmd_pause, "writer": cmd_writer,
         "olm": cmd_olm}[args.what](args)
    except subprocess.CalledProcessError as e:
        fail(f"{e.cmd[0]} failed with exit code {e.returncode}")


if __name__ == "__main__":
    main()
