"""bundle_push against a real TLS registry (registry_deploy on a loopback port): a version 2 bundle's images go in over
the HTTP API, verified, once; damaged, cut-off and differential cases. This machine's engine pulls the result.

Repositories are itest-bpush-<random>; the registry container is removed afterwards, pulled images too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import threading
import uuid

import docker
import pytest
import requests

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ports import free_port
from site_registry import SOCKET, USER, site_registry  # noqa: F401  (a fixture) pylint: disable=unused-import

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(directory, data):
    path = os.path.join(directory, bundle.blob_name(digest_of(data)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return {"digest": digest_of(data), "size": len(data)}


def layer_tar(name, size):
    """A one-file layer tar of `size` random bytes (incompressible: the blob is about that big)."""
    payload = os.urandom(size)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return data.getvalue()


def image_entry(directory, references, layer_tars):
    """A v2 bundle entry (OCI manifest, config, gzip layers) whose blobs are written into `directory`."""
    layers = []
    for tar in layer_tars:
        blob = put_blob(directory, gzip.compress(tar, mtime=0))
        layers.append(dict(blob, media_type=GZIP_LAYER, diff_id=digest_of(tar), diff_size=len(tar)))
    config = put_blob(directory, json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/nothing"]},
                                             "rootfs": {"type": "layers", "diff_ids": [layer["diff_id"] for layer in layers]}}).encode())
    manifest = put_blob(directory, json.dumps({
        "schemaVersion": 2, "mediaType": bundle.OCI_MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": GZIP_LAYER, "digest": layer["digest"], "size": layer["size"]} for layer in layers]}).encode())
    return {"references": references, "tags": references, "image_id": config["digest"], "config_digest": config["digest"],
            "manifest_digest": manifest["digest"], "manifest": dict(manifest, media_type=bundle.OCI_MANIFEST_TYPE),
            "config": config, "layers": layers, "os": "linux", "architecture": "amd64"}


def write_bundle(directory, entries, requires=None):
    manifest = bundle.new_manifest(2)
    manifest["images"] = entries
    if requires:
        manifest["requires"] = requires
    bundle.write_manifest(str(directory), manifest)
    return manifest


@pytest.fixture
def names():
    suffix = uuid.uuid4().hex[:8]
    return {"hub": "itest-bpush-%s:1" % suffix, "hub_repo": "library/itest-bpush-%s" % suffix,
            "private": "registry.example.com/itest-bpush-%s/app:2.1" % suffix, "private_repo": "itest-bpush-%s/app" % suffix}


@pytest.fixture
def two_images(tmp_path, names):
    """A bundle of two images sharing their first layer (the shared one is 64 KiB, the others 1 MiB)."""
    base = layer_tar("base.bin", 64 * 1024)
    entries = [image_entry(str(tmp_path), [names["hub"]], [base, layer_tar("hub.bin", 1 << 20)]),
               image_entry(str(tmp_path), [names["private"]], [base, layer_tar("app.bin", 1 << 20)])]
    write_bundle(tmp_path, entries)
    return str(tmp_path), entries


def params_for(site, bundle_dir, **overrides):
    params = dict(bundle=bundle_dir, registry=site["registry"], username=USER[0], password=USER[1], tls_ca=site["ca"],
                  mirror_namespace=True)
    params.update(overrides)
    return params


def registry_has(site, repository, what, digest_or_tag):
    answer = requests.head("https://%s/v2/%s/%s/%s" % (site["registry"], repository, what, digest_or_tag), auth=USER,
                           verify=site["ca"], timeout=10, headers={"Accept": bundle.OCI_MANIFEST_TYPE})
    return answer.status_code == 200


def test_check_mode_predicts_then_pushes_once_and_the_engine_pulls_it(engine, site_registry, two_images, names, module_runner):
    bundle_dir, entries = two_images
    params = params_for(site_registry, bundle_dir)
    predicted = module_runner("bundle_push", params, check_mode=True)
    assert predicted["changed"] and [item["action"] for item in predicted["images"]] == ["pushed", "pushed"], predicted
    assert len(predicted["needed_files"]) == 7  # two manifests, two configs, three distinct layers
    assert not registry_has(site_registry, names["hub_repo"], "manifests", "1")

    first = module_runner("bundle_push", params)
    assert not first["failed"], first
    assert [item["action"] for item in first["images"]] == ["pushed", "pushed"]
    hub, private = first["images"]
    assert hub["targets"] == ["%s/%s:1" % (site_registry["registry"], names["hub_repo"])]
    assert private["targets"] == ["%s/%s:2.1" % (site_registry["registry"], names["private_repo"])]
    assert hub["image_id"] == entries[0]["image_id"] and hub["digest"] == entries[0]["manifest"]["digest"]
    # the shared layer went up once: the second repository mounted it
    assert private["bytes"] == entries[1]["config"]["size"] + entries[1]["layers"][1]["size"] + entries[1]["manifest"]["size"]
    assert registry_has(site_registry, names["private_repo"], "blobs", entries[1]["layers"][0]["digest"])
    assert "password" not in json.dumps({k: v for k, v in first.items() if k != "invocation"})

    for again in (module_runner("bundle_push", params, check_mode=True), module_runner("bundle_push", params)):
        assert not again["changed"] and again["needed_files"] == [], again
        assert [(item["action"], item["bytes"]) for item in again["images"]] == [("unchanged", 0), ("unchanged", 0)]

    pulled = "%s/%s:1" % (site_registry["registry"], names["hub_repo"])
    certs_d = "/etc/docker/certs.d/%s" % site_registry["registry"]
    os.makedirs(certs_d, exist_ok=True)
    shutil.copy(site_registry["ca"], os.path.join(certs_d, "ca.crt"))
    try:
        engine.login(registry=site_registry["registry"], username=USER[0], password=USER[1], reauth=True)
        engine.images.pull(pulled)
        assert engine.images.get(pulled).id == entries[0]["image_id"]
        engine.images.remove(pulled, force=True)
    finally:
        shutil.rmtree(certs_d)


def test_a_damaged_blob_is_refused_and_the_registry_keeps_nothing_of_it(site_registry, two_images, names, module_runner):
    bundle_dir, entries = two_images
    layer = entries[0]["layers"][1]
    path = bundle.blob_path(bundle_dir, layer["digest"])
    with open(path, "r+b") as handle:
        handle.seek(layer["size"] // 2)
        byte = handle.read(1)
        handle.seek(layer["size"] // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = module_runner("bundle_push", params_for(site_registry, bundle_dir, images=[names["hub"]]))
    assert result["failed"], result
    assert path in result["msg"] and "is damaged" in result["msg"] and layer["digest"] in result["msg"], result["msg"]
    assert not registry_has(site_registry, names["hub_repo"], "blobs", layer["digest"])
    assert not registry_has(site_registry, names["hub_repo"], "manifests", "1")
    with open(path, "r+b") as handle:
        handle.seek(layer["size"] // 2)
        handle.write(byte)
    assert module_runner("bundle_push", params_for(site_registry, bundle_dir, images=[names["hub"]]))["images"][0]["action"] == "pushed"


class CuttingRelay:
    """A loopback TCP relay to the registry that drops both connections once `limit` bytes went upstream."""

    def __init__(self, target_port, limit):
        self.target_port, self.limit, self.sent = target_port, limit, 0
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self.pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, False), daemon=True).start()

    def pipe(self, source, sink, counted):
        try:
            while True:
                data = source.recv(65536)
                if not data or (counted and self.sent + len(data) > self.limit):
                    break
                if counted:
                    self.sent += len(data)
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self):
        self.listener.close()


def test_an_upload_cut_off_half_way_is_completed_by_the_rerun(site_registry, two_images, names, module_runner):
    bundle_dir, entries = two_images
    relay = CuttingRelay(site_registry["port"], limit=512 * 1024)
    try:
        cut = module_runner("bundle_push", params_for(site_registry, bundle_dir, images=[names["hub"]],
                                                      registry="127.0.0.1:%d" % relay.port))
    finally:
        relay.close()
    # the registry may still answer the cut request (upload invalid) or the connection is simply gone: both fail the run
    assert cut["failed"] and "egistry 127.0.0.1:%d" % relay.port in cut["msg"] and relay.sent <= 512 * 1024, cut
    big = entries[0]["layers"][1]["digest"]
    assert not registry_has(site_registry, names["hub_repo"], "blobs", big)
    rerun = module_runner("bundle_push", params_for(site_registry, bundle_dir, images=[names["hub"]]))
    assert not rerun["failed"] and rerun["images"][0]["action"] == "pushed", rerun
    assert registry_has(site_registry, names["hub_repo"], "blobs", big)
    assert registry_has(site_registry, names["hub_repo"], "manifests", "1")


def test_a_differential_bundle_whose_base_the_registry_lacks_is_refused_before_any_upload(site_registry, tmp_path, names, module_runner):
    base, app = layer_tar("base.bin", 4096), layer_tar("app.bin", 4096)
    entry = image_entry(str(tmp_path), [names["hub"]], [base, app])
    base_blob = entry["layers"][0]
    os.unlink(bundle.blob_path(str(tmp_path), base_blob["digest"]))
    write_bundle(tmp_path, [entry], requires={"bundle": digest_of(b"the base bundle.json"), "blobs": [
        {"digest": base_blob["digest"], "size": base_blob["size"]}]})
    for check_mode in (True, False):
        result = module_runner("bundle_push", params_for(site_registry, str(tmp_path)), check_mode=check_mode)
        assert result["failed"], result
        assert "differential" in result["msg"] and base_blob["digest"] in result["msg"] and names["hub"] in result["msg"], result["msg"]
    for blob in (entry["config"], entry["layers"][1]):
        assert not registry_has(site_registry, names["hub_repo"], "blobs", blob["digest"])


def test_a_partial_directory_is_probed_in_check_mode_and_refused_for_real_naming_the_files(site_registry, two_images, names, module_runner,
                                                                                           tmp_path_factory):
    bundle_dir, entries = two_images
    staged = tmp_path_factory.mktemp("staged")
    with open(os.path.join(bundle_dir, "bundle.json"), "rb") as source, open(staged / "bundle.json", "wb") as copy:
        copy.write(source.read())
    params = params_for(site_registry, str(staged), images=[names["private"]])
    probe = module_runner("bundle_push", params, check_mode=True)
    assert not probe["failed"] and probe["images"][0]["action"] == "pushed", probe
    wanted = probe["needed_files"]
    assert bundle.blob_name(entries[1]["layers"][1]["digest"]) in wanted
    refused = module_runner("bundle_push", params)
    assert refused["failed"] and "stage these files" in refused["msg"] and names["private"] in refused["msg"], refused
    assert not registry_has(site_registry, names["private_repo"], "blobs", entries[1]["config"]["digest"])
    for name in wanted:
        os.makedirs(os.path.dirname(staged / name), exist_ok=True)
        with open(os.path.join(bundle_dir, name), "rb") as source, open(staged / name, "wb") as copy:
            copy.write(source.read())
    assert module_runner("bundle_push", params)["images"][0]["action"] == "pushed"


def test_a_bundle_saved_by_image_save_goes_in_and_the_engine_pulls_it_by_its_id(engine, site_registry, tmp_path, module_runner):
    suffix = uuid.uuid4().hex[:8]
    reference = "registry.example.com/itest-bpush-%s/saved:1" % suffix
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        payload = os.urandom(300 * 1024)
        info = tarfile.TarInfo("payload.bin")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    engine.api.import_image_from_data(data.getvalue(), repository=reference.rsplit(":", 1)[0], tag="1")
    image_id = engine.images.get(reference).id
    pulled = "%s/itest-bpush-%s/saved:1" % (site_registry["registry"], suffix)
    certs_d = "/etc/docker/certs.d/%s" % site_registry["registry"]
    try:
        saved = module_runner("image_save", {"images": [reference], "dest": str(tmp_path / "bundle"), "format_version": 2,
                                             "pull": "never", "docker_host": SOCKET})
        assert not saved["failed"], saved
        engine.images.remove(image_id, force=True)
        pushed = module_runner("bundle_push", params_for(site_registry, str(tmp_path / "bundle")))
        assert not pushed["failed"] and pushed["images"][0]["action"] == "pushed", pushed
        assert pushed["images"][0]["image_id"] == image_id and pushed["images"][0]["bytes"] > 0
        os.makedirs(certs_d, exist_ok=True)
        shutil.copy(site_registry["ca"], os.path.join(certs_d, "ca.crt"))
        engine.login(registry=site_registry["registry"], username=USER[0], password=USER[1], reauth=True)
        assert engine.images.pull(pulled).id == image_id
    finally:
        shutil.rmtree(certs_d, ignore_errors=True)
        for name in (pulled, reference):
            try:
                engine.images.remove(name, force=True)
            except docker.errors.NotFound:
                pass
