"""image_pull against a real registry (the lab's registry:2 on loopback, which Docker allows over
plain HTTP) and this machine's engine: pull, check the ID, tag as the bundle names it, skip after."""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid

import docker
import pytest
import requests

from ansible_collections.fleet.images.plugins.module_utils import engine_io, registry


def tiny_image(client, repository, text):
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    client.api.import_image_from_data(layer.getvalue(), repository=repository, tag="1")
    return client.images.get(repository + ":1").id


@pytest.fixture(scope="module")
def site_registry():
    client = docker.from_env()
    name = "fleet-test-image-pull-%s" % uuid.uuid4().hex[:8]
    container = client.containers.run("registry:2", name=name, detach=True, ports={"5000/tcp": ("127.0.0.1", None)})
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"]
        address = "127.0.0.1:%s" % port
        for _attempt in range(50):
            try:
                if requests.get("http://%s/v2/" % address, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield client, address
    finally:
        container.remove(force=True, v=True)


@pytest.fixture()
def pushed(site_registry):
    """A bundle-style entry for an image that is in the site registry but not tagged locally."""
    client, address = site_registry
    suffix = uuid.uuid4().hex[:8]
    reference = "registry.example.com/fleet-test/pull-%s:1" % suffix
    image_id = tiny_image(client, reference.rsplit(":", 1)[0], "pull test %s\n" % suffix)
    _path, tag, target = registry.target_reference(reference, address)
    client.api.tag(image_id, target.rsplit(":", 1)[0], tag)
    for line in client.api.push(target.rsplit(":", 1)[0], tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    client.api.remove_image(target)
    client.api.remove_image(reference)
    entry = {"references": [reference], "tags": [reference], "image_id": image_id, "file": "images/x.tar", "size": 1}
    yield client, address, entry
    for name in (reference, target):
        try:
            client.api.remove_image(name, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_pulls_checks_the_id_and_tags_as_the_bundle_names_it(pushed, module_runner):
    client, address, entry = pushed
    check = module_runner("image_pull", {"images": [entry], "registry": address}, check_mode=True)
    assert not check["failed"] and check["changed"], check
    assert [(item["reference"], item["action"], item["bytes"]) for item in check["images"]] == [(entry["references"][0], "pulled", 1)]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(entry["tags"][0])  # check mode pulled nothing
    result = module_runner("image_pull", {"images": [entry], "registry": address})
    assert not result["failed"] and result["changed"], result
    assert result["images"][0]["action"] == "pulled" and result["images"][0]["bytes"] > 0, result
    assert client.images.get(entry["tags"][0]).id == entry["image_id"]
    # the registry-named tag is not left behind
    assert all(not tag.startswith(address) for tag in client.images.get(entry["image_id"]).tags)
    again = module_runner("image_pull", {"images": [entry], "registry": address})
    assert not again["failed"] and not again["changed"], again
    assert [(item["action"], item["image_id"], item["bytes"]) for item in again["images"]] == [("unchanged", entry["image_id"], 0)]


def test_an_image_with_another_id_than_the_bundle_fails_naming_both(pushed, module_runner):
    client, address, entry = pushed
    wrong = dict(entry, image_id="sha256:" + "0" * 64)
    result = module_runner("image_pull", {"images": [wrong], "registry": address})
    assert result["failed"]
    assert entry["image_id"] in result["msg"] and wrong["image_id"] in result["msg"] and entry["references"][0] in result["msg"]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(entry["tags"][0])


def test_an_entry_without_an_image_id_is_refused_before_any_pull(site_registry, module_runner):
    _client, address = site_registry
    result = module_runner("image_pull", {"images": [{"references": ["x:1"], "tags": ["x:1"]}], "registry": address})
    assert result["failed"] and "images[0]: x:1 needs image_id" in result["msg"]


@pytest.fixture()
def pushed_big(site_registry, tmp_path):
    """An 8 MiB image in the site registry: pulling it takes long enough to be cut off."""
    client, address = site_registry
    marker = uuid.uuid4().hex[:8]
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY data.bin /data.bin\n")
    (tmp_path / "data.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    target = "%s/fi-bytes/pull-big:%s" % (address, marker)
    image, _logs = client.images.build(path=str(tmp_path), tag=target, rm=True, forcerm=True, pull=False)
    for line in client.api.push(target.rsplit(":", 1)[0], tag=marker, stream=True, decode=True):
        assert "error" not in line, line
    yield target
    client.api.remove_image(image.id, force=True)


def test_the_engine_dying_during_a_pull_is_a_clear_failure(private_engine, pushed_big, monkeypatch):
    api = private_engine.client.api
    pull = api.pull

    def pull_then_die(*args, **kwargs):
        for number, event in enumerate(pull(*args, **kwargs)):
            yield event
            if number == 0:
                private_engine.kill()  # dockerd goes away with the pull half done

    monkeypatch.setattr(api, "pull", pull_then_die)
    with pytest.raises(engine_io.TransferError) as caught:
        engine_io.pull_image(private_engine.client, pushed_big, None, private_engine.docker_host)
    message = str(caught.value)
    assert message.startswith("the Docker Engine %s stopped answering while pulling %s (" % (private_engine.docker_host, pushed_big)), message
    assert message.endswith("Check that it runs (systemctl status docker, journalctl -u docker), then run the task again")
