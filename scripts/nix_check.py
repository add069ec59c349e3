#!/usr/bin/env python3
"""Evaluate the Nix flake and check its image against nix/image.json and scripts/image.py.

    scripts/nix_check.py [--nix NIX]

Runs `nix flake check --no-build --all-systems` (every package, check, the NixOS VM test and
the formatter must evaluate), then reads the image's derivations (`nix derivation show -r`)
and requires what scripts/image.py builds without Nix: each binary of nix/image.json copied as
a regular file into its binDir with mode 0755 (not a link into the store, nothing else from
the store), the directories with their modes, `created` and the files' times at image.json's
`created`, and the same image configuration (entrypoint, command, environment, user, labels).

NIX: the machine's `nix` if it has one, else `../shared/nix-eval/nix` beside the project (a
stand-in that evaluates with a nixpkgs snapshot and cannot build: read its header). Neither:
an error saying what to install. Nothing is built here: building needs a binary cache or the
internet. Exit status 1 on any failure, with the reason.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import image  # noqa: E402  (the layout and configuration scripts/image.py writes)

ROOT = image.ROOT
STAND_IN = ROOT.parent / "shared" / "nix-eval" / "nix"
SYSTEM = "x86_64-linux"


def fail(msg):
    print(f"nix_check: {msg}", file=sys.stderr)
    sys.exit(1)


def find_nix(given):
    for candidate in (given, shutil.which("nix"), str(STAND_IN) if STAND_IN.exists() else None):
        if candidate:
            return candidate
    fail("no nix: install Nix (with flakes), or keep the evaluation stand-in at "
         f"{STAND_IN} (see its header)")


def run(nix, args, capture=False):
    t0 = time.monotonic()
    print(f"+ {nix} {' '.join(args)}", file=sys.stderr, flush=True)
    out = subprocess.run([nix, *args], cwd=ROOT, text=True,
                         stdout=subprocess.PIPE if capture else None)
    if out.returncode != 0:
        fail(f"`nix {' '.join(args)}` failed (exit {out.returncode})")
    print(f"  ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    return out.stdout


def derivation(drvs, suffix):
    found = [v for k, v in drvs.items() if k.endswith(suffix)]
    if len(found) != 1:
        fail(f"expected one derivation *{suffix} in the image's closure, found {len(found)}")
    return found[0]["env"]


def check_image(drvs, spec, version):
    name = Path(spec["name"]).name
    layer = derivation(drvs, f"-{name}-customisation-layer.drv")
    commands = [line.split() for line in layer["extraCommands"].splitlines() if line.strip()]
    bin_dir = spec["binDir"]
    want = [["mkdir", "-p", bin_dir]]
    for b in spec["binaries"]:
        copy = next((c for c in commands if c[:1] == ["cp"] and c[-1] == f"{bin_dir}/{b}"), None)
        if not copy or len(copy) != 3 or not copy[1].startswith("/nix/store/") \
                or not copy[1].endswith(f"/bin/{b}"):
            fail(f"the image does not copy {b} into /{bin_dir} as a file: {layer['extraCommands']}")
        want += [copy, ["chmod", "0755", f"{bin_dir}/{b}"]]
    for d in spec["directories"]:
        want += [["mkdir", "-p", d["path"]], ["chmod", d["mode"], d["path"]]]
    if commands != want:
        fail(f"the image's layer is made otherwise than nix/image.json says:\n"
             f"{layer['extraCommands']}\nexpected:\n" + "\n".join(" ".join(c) for c in want))

    conf = derivation(drvs, f"-{name}-conf.json.drv")
    for key in ("created", "mtime"):
        if conf.get(key) != spec["created"]:
            fail(f"image {key} {conf.get(key)!r}, nix/image.json says {spec['created']!r}")
    # The store paths the image's layers are computed from: none, so no store path is a layer.
    layers = derivation(drvs, "-layers.json.drv")
    roots = json.loads(layers["__json"])["exportReferencesGraph"]["graph"]
    if roots:
        fail(f"the image would carry store paths as layers (closure of {roots})")

    base = json.loads(derivation(drvs, f"-{name}-base.json.drv")["text"])
    want_config = image.product_config(spec, version)
    if base.get("config") != want_config:
        fail(f"image config {base.get('config')} differs from scripts/image.py's {want_config}")
    print(f"nix_check: the image's layer copies {', '.join(spec['binaries'])} into /{bin_dir} as "
          f"files, makes {', '.join('/' + d['path'] + ' ' + d['mode'] for d in spec['directories'])}; "
          f"created and mtime {spec['created']}; config as scripts/image.py's")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nix", help="the nix binary (default: the machine's, else the stand-in)")
    args = p.parse_args()
    nix = find_nix(args.nix)
    run(nix, ["flake", "check", "--no-build", "--all-systems"])
    out = run(nix, ["derivation", "show", "-r", f".#packages.{SYSTEM}.image"], capture=True)
    check_image(json.loads(out), image.product_spec(), image.workspace_version())
    print("nix_check: the flake evaluates (nothing built)")


if __name__ == "__main__":
    main()
