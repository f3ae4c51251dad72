"""registry_gc against a real distribution registry (the lab's registry:2) run by registry_deploy.

Images are put in over the registry's HTTP API (a config blob, one layer, an OCI manifest), so the
shared engine gets no image or tag from this test; only the registry container, named fi-e-*.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import uuid

import pytest
import trustme

from ports import free_port

from ansible_collections.fleet.images.plugins.module_utils.registry_api import api_session

SOCKET = "unix:///var/run/docker.sock"
USER = ("fi-e-pusher", "fi-e-secret-%s" % uuid.uuid4().hex[:8])
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture()
def site(engine, module_runner, tmp_path):
    """A TLS registry with deletes enabled (the push endpoint as the registry role runs it when registry_gc is on)."""
    ca = trustme.CA()
    server = ca.issue_cert("registry.site.example")  # not 127.0.0.1: the module checks the chain, not the name
    paths = {name: str(tmp_path / name) for name in ("ca.crt", "server.crt", "server.key")}
    ca.cert_pem.write_to_path(paths["ca.crt"])
    server.cert_chain_pems[0].write_to_path(paths["server.crt"])
    server.private_key_pem.write_to_path(paths["server.key"])
    params = dict(docker_host=SOCKET, name="fi-e-gc-%s" % uuid.uuid4().hex[:8], port=free_port(), bind_address="127.0.0.1",
                  data_dir=str(tmp_path / "data"), htpasswd_path=str(tmp_path / "htpasswd"), config_path=str(tmp_path / "config.yml"),
                  tls_cert=paths["server.crt"], tls_key=paths["server.key"], tls_ca=paths["ca.crt"], delete_enabled=True,
                  users=[{"name": USER[0], "password": USER[1]}])
    result = module_runner("registry_deploy", params)
    assert not result["failed"], result
    session = api_session(paths["ca.crt"], *USER, retries=False, check_hostname=False)
    yield {"registry": "127.0.0.1:%d" % params["port"], "ca": paths["ca.crt"], "name": params["name"], "session": session,
           "data": params["data_dir"], "record": str(tmp_path / "record" / "bundles.json"),
           "deploy": params}
    engine.containers.get(params["name"]).remove(force=True, v=True)


def upload(site, repository, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    base = "https://%s/v2/%s/blobs/" % (site["registry"], repository)
    started = site["session"].post(base + "uploads/", timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    location = location if location.startswith("http") else "https://%s%s" % (site["registry"], location)
    done = site["session"].put(location, params={"digest": digest}, data=data, headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert done.status_code == 201, done.text
    return digest


def push(site, reference, layer_bytes=256 * 1024, shared=None):
    """Put a one-layer image (plus the `shared` layer below it, if given) under reference; returns its manifest digest."""
    repository, tag = reference.rsplit(":", 1)
    layers = []
    for payload in ([shared] if shared else []) + [os.urandom(layer_bytes)]:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as archive:
            info = tarfile.TarInfo("payload")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        layers.append(data.getvalue())
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
        "sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": upload(site, repository, config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": upload(site, repository, layer), "size": len(layer)}
                           for layer in layers]}
    body = json.dumps(manifest).encode()
    answer = site["session"].put("https://%s/v2/%s/manifests/%s" % (site["registry"], repository, tag), data=body,
                                 headers={"Content-Type": OCI_MANIFEST}, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.headers["Docker-Content-Digest"]


def pullable(site, reference):
    """Whether the manifest and every blob it references can be fetched (what a pull needs)."""
    repository, tag = reference.rsplit(":", 1)
    answer = site["session"].get("https://%s/v2/%s/manifests/%s" % (site["registry"], repository, tag),
                                 headers={"Accept": OCI_MANIFEST}, timeout=30)
    if answer.status_code != 200:
        return False
    manifest = answer.json()
    for blob in [manifest["config"]] + manifest["layers"]:
        got = site["session"].get("https://%s/v2/%s/blobs/%s" % (site["registry"], repository, blob["digest"]), timeout=30)
        if got.status_code != 200 or "sha256:" + hashlib.sha256(got.content).hexdigest() != blob["digest"]:
            return False
    return True


def gc(module_runner, site, references, check_mode=False, **more):
    params = dict(docker_host=SOCKET, references=references, registry=site["registry"], username=USER[0], password=USER[1],
                  tls_ca=site["ca"], record=site["record"], push_container=site["name"], keep_bundles=2, delete=True)
    params.update(more)
    return module_runner("registry_gc", params, check_mode=check_mode)


def started_at(engine, site):
    return engine.api.inspect_container(site["name"])["State"]["StartedAt"]


def test_drops_what_the_last_bundles_do_not_hold_keeps_the_rest_pullable_and_reruns_quietly(engine, site, module_runner):
    base = os.urandom(128 * 1024)  # a layer every app image shares
    push(site, "fi-e/app:1", shared=base)
    push(site, "fi-e/by-hand:1")  # never in a bundle: never touched
    first = gc(module_runner, site, ["fi-e/app:1"])
    assert not first["failed"] and first["reclaimed_bytes"] == 0, first
    push(site, "fi-e/app:2", shared=base)
    assert not gc(module_runner, site, ["fi-e/app:2"])["failed"]
    push(site, "fi-e/app:3", shared=base)
    check = gc(module_runner, site, ["fi-e/app:3"], check_mode=True)
    assert [item["reference"] for item in check["images"] if item["action"] == "removed"] == ["fi-e/app:1"]
    assert pullable(site, "fi-e/app:1")  # check mode deleted nothing
    before = started_at(engine, site)
    real = gc(module_runner, site, ["fi-e/app:3"])
    assert not real["failed"], real
    assert started_at(engine, site) != before  # stopped for the collection, started again
    assert [item["reference"] for item in real["images"] if item["action"] == "removed"] == ["fi-e/app:1"]
    assert real["changed"] and real["reclaimed_bytes"] >= 256 * 1024
    assert [bundle["images"] for bundle in real["bundles"]] == [["fi-e/app:2"], ["fi-e/app:3"]]
    assert not pullable(site, "fi-e/app:1")
    assert pullable(site, "fi-e/app:2") and pullable(site, "fi-e/app:3") and pullable(site, "fi-e/by-hand:1")
    assert oct(os.stat(site["record"]).st_mode & 0o777) == "0o600"
    before = started_at(engine, site)
    rerun = gc(module_runner, site, ["fi-e/app:3"])
    assert not rerun["failed"] and not rerun["changed"] and rerun["reclaimed_bytes"] == 0, rerun
    assert started_at(engine, site) == before  # nothing to collect: the push endpoint was not stopped
    assert engine.containers.get(site["name"]).status == "running"


def test_a_tag_a_kept_bundle_pushed_again_with_the_same_image_stays(site, module_runner):
    push(site, "fi-e/app:1")
    assert not gc(module_runner, site, ["fi-e/app:1"], keep_bundles=1)["failed"]
    push(site, "fi-e/other:1")
    result = gc(module_runner, site, ["fi-e/app:1", "fi-e/other:1"], keep_bundles=1)
    assert not result["failed"] and [item["action"] for item in result["images"]] == ["kept", "kept"], result
    assert pullable(site, "fi-e/app:1")


def test_without_deletes_enabled_the_collection_stops_with_what_to_do(module_runner, site):
    push(site, "fi-e/app:1")
    assert not gc(module_runner, site, ["fi-e/app:1"], delete=False)["failed"]
    push(site, "fi-e/app:2")
    redeployed = module_runner("registry_deploy", dict(site["deploy"], delete_enabled=False))
    assert not redeployed["failed"], redeployed
    refused = gc(module_runner, site, ["fi-e/app:2"], keep_bundles=1)
    assert refused["failed"] and "refuses deletes (HTTP 405" in refused["msg"] and "registry_gc" in refused["msg"], refused
    assert pullable(site, "fi-e/app:1")


def test_an_unreachable_push_endpoint_is_named_and_no_secret_is_shown(module_runner, site):
    refused = gc(module_runner, site, ["fi-e/app:2"], registry="127.0.0.1:%d" % free_port())
    assert refused["failed"] and "Cannot reach registry 127.0.0.1:" in refused["msg"], refused
    assert USER[1] not in json.dumps(refused)
