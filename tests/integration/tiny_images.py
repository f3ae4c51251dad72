"""Tiny images made without any engine or registry (importable from every test directory).

A docker-archive with one small layer and a config naming any platform: every engine generation
`docker load`s it as it is (Docker 20.10 ignores `docker import --platform`), so tests get images of
another architecture, or many distinct small images, in milliseconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile


def _add(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def tiny_image(tags, content, architecture="amd64"):
    """(the docker-archive bytes, the image ID) of one linux/`architecture` image tagged `tags`, its layer holding `content`."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        _add(archive, "app/version", content.encode())
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": architecture, "os": "linux", "created": "2026-12-01T00:00:00Z",
        "config": {"Cmd": ["/app/version"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
        "history": [{"created": "2026-12-01T00:00:00Z", "created_by": "fleet.images test"}],
    }).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        _add(archive, config_hex + ".json", config)
        _add(archive, diff_id + "/layer.tar", layer_bytes)
        _add(archive, "manifest.json", json.dumps([{"Config": config_hex + ".json", "RepoTags": list(tags),
                                                    "Layers": [diff_id + "/layer.tar"]}]).encode())
    return out.getvalue(), "sha256:" + config_hex
