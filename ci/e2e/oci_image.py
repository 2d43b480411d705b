#!/usr/bin/env python3
"""Write a one-layer OCI image archive around static binaries, for `ctr images import`.

The real node needs two images that hold nothing but one static binary each (the pod
sandbox's `pause`, and `coredns`). Building them needs no registry and no builder: the
layer is a tar of the files, the config names the entrypoint, and the archive is an OCI
image layout whose index carries the full image name for containerd.

Usage: oci_image.py OUT.tar NAME:TAG ENTRYPOINT SRC=DEST [SRC=DEST ...] [--user UID:GID]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _layer(files: list[tuple[Path, str]]) -> tuple[bytes, str]:
    """Return (gzipped layer, diff id) with fixed times and owners, so rebuilds are identical."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for src, dest in files:
            parts = Path(dest.lstrip("/")).parts
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            data = src.read_bytes()
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def build(out: Path, name: str, entrypoint: list[str], files: list[tuple[Path, str]], user: str) -> None:
    layer, diff_id = _layer(files)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": user, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_digest, config_bytes = _blob(json.dumps(config, sort_keys=True).encode())
    layer_digest, layer_bytes = _blob(layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(layer_bytes),
            }
        ],
    }
    manifest_digest, manifest_bytes = _blob(json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
                },
            }
        ],
    }
    entries = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index, sort_keys=True).encode(),
    }
    for digest, data in (
        (config_digest, config_bytes),
        (layer_digest, layer_bytes),
        (manifest_digest, manifest_bytes),
    ):
        entries["blobs/sha256/" + digest.split(":", 1)[1]] = data
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("name")
    ap.add_argument("entrypoint")
    ap.add_argument("files", nargs="+", help="SRC=DEST")
    ap.add_argument("--user", default="65535:65535")
    args = ap.parse_args()
    files = [(Path(f.split("=", 1)[0]), f.split("=", 1)[1]) for f in args.files]
    build(args.out, args.name, [args.entrypoint], files, args.user)


if __name__ == "__main__":
    main()
