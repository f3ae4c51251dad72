"""image_push against this machine's engine and a registry:2 run by registry_deploy on a loopback port.

The engine reaches the registry at 127.0.0.1:PORT; the module's own checks verify TLS with the test CA.
Images and containers are named itest-push-<random> / itest-registry-<random> and removed afterwards.
"""

from __future__ import annotations

import io
import os
import tarfile
import uuid

import docker
import pytest
import requests
import trustme

from site_registry import SOCKET, USER, site_registry  # noqa: F401  (a fixture) pylint: disable=unused-import


@pytest.fixture
def make_image(engine):
    """Imports a one-file image under the given reference (content unique per call); removes every tag afterwards."""
    made = []

    def make(reference):
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as archive:
            payload = ("%s %s\n" % (reference, uuid.uuid4())).encode()
            info = tarfile.TarInfo("payload.txt")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        repository, tag = reference.rsplit(":", 1)
        engine.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag)
        image = engine.images.get(reference)
        made.append(image.id)
        return image

    yield make
    for image_id in made:
        try:
            engine.images.remove(image_id, force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture
def run_module(module_runner):
    return module_runner


def push_params(site, images, **overrides):
    params = dict(docker_host=SOCKET, images=images, registry=site["registry"], username=USER[0], password=USER[1], tls_ca=site["ca"])
    params.update(overrides)
    return params


def registry_tags(site, repository):
    answer = requests.get("https://%s/v2/%s/tags/list" % (site["registry"], repository), auth=USER, verify=site["ca"], timeout=10)
    return answer.json().get("tags") or [] if answer.status_code == 200 else []


def test_pushes_under_client_names_then_skips(engine, site_registry, make_image, run_module):
    suffix = uuid.uuid4().hex[:8]
    hub = "itest-push-%s:1" % suffix
    private = "registry.example.com/itest-push-%s/app:2.1" % suffix
    make_image(hub)
    make_image(private)
    params = push_params(site_registry, [hub, private], mirror_namespace=True)

    predicted = run_module("image_push", params, check_mode=True, diff=True)
    assert predicted["changed"] and [item["action"] for item in predicted["images"]] == ["pushed", "pushed"], predicted
    assert all(item["bytes"] > 0 for item in predicted["images"]), predicted
    assert registry_tags(site_registry, "library/itest-push-%s" % suffix) == []

    first = run_module("image_push", params, diff=True)
    assert first["changed"], first
    targets = {item["reference"]: item["target"] for item in first["images"]}
    assert targets == {
        hub: "%s/library/itest-push-%s:1" % (site_registry["registry"], suffix),
        private: "%s/itest-push-%s/app:2.1" % (site_registry["registry"], suffix),
    }
    assert all(item["digest"].startswith("sha256:") and item["action"] == "pushed" and item["bytes"] > 0 for item in first["images"])
    assert registry_tags(site_registry, "library/itest-push-%s" % suffix) == ["1"]
    assert registry_tags(site_registry, "itest-push-%s/app" % suffix) == ["2.1"]
    assert first["diff"]["after"]["present"] == sorted(targets.values())

    again_check = run_module("image_push", params, check_mode=True)
    again = run_module("image_push", params)
    for result in (again_check, again):
        assert not result["changed"] and [(item["action"], item["bytes"]) for item in result["images"]] == [("unchanged", 0)] * 2, result
        assert {item["digest"] for item in result["images"]} == {item["digest"] for item in first["images"]}


def test_an_image_loaded_fresh_is_recognised_by_its_config_digest(engine, site_registry, make_image, run_module):
    reference = "itest-push-%s:fresh" % uuid.uuid4().hex[:8]
    image = make_image(reference)
    params = push_params(site_registry, [reference])
    first = run_module("image_push", params)
    assert first["changed"], first
    # Forget what the engine recorded about the push, as on a host that just loaded the image from a bundle.
    engine.images.remove(first["images"][0]["target"])
    assert not any(site_registry["registry"] in digest for digest in engine.images.get(image.id).attrs["RepoDigests"])
    second = run_module("image_push", params)
    assert not second["changed"], second
    assert second["images"][0]["action"] == "unchanged" and second["images"][0]["digest"] == first["images"][0]["digest"]


def test_a_new_image_under_the_same_tag_is_pushed_again(site_registry, make_image, run_module):
    reference = "itest-push-%s:moving" % uuid.uuid4().hex[:8]
    make_image(reference)
    params = push_params(site_registry, [reference])
    first = run_module("image_push", params)
    make_image(reference)
    second = run_module("image_push", params)
    assert second["changed"] and second["images"][0]["digest"] != first["images"][0]["digest"], second


def test_mirror_namespace_off_keeps_short_hub_names(site_registry, make_image, run_module):
    name = "itest-push-%s" % uuid.uuid4().hex[:8]
    make_image(name + ":1")
    result = run_module("image_push", push_params(site_registry, [name + ":1"]))
    assert result["images"][0]["target"] == "%s/%s:1" % (site_registry["registry"], name)
    assert registry_tags(site_registry, name) == ["1"]


def test_a_wrong_password_fails_clearly_and_pushes_nothing(site_registry, make_image, run_module):
    name = "itest-push-%s" % uuid.uuid4().hex[:8]
    make_image(name + ":1")
    result = run_module("image_push", push_params(site_registry, [name + ":1"], password="not-the-password"))
    assert result["failed"], result
    assert "refused the user pusher" in result["msg"] and "wrong username or password" in result["msg"], result["msg"]
    assert site_registry["registry"] in result["msg"]
    assert "not-the-password" not in repr({k: v for k, v in result.items() if k != "invocation"})
    assert registry_tags(site_registry, name) == []


def test_no_credentials_against_an_authenticated_registry(site_registry, make_image, run_module):
    name = "itest-push-%s" % uuid.uuid4().hex[:8]
    make_image(name + ":1")
    result = run_module("image_push", push_params(site_registry, [name + ":1"], username=None, password=None))
    assert result["failed"] and "needs credentials" in result["msg"], result


def test_an_image_missing_from_the_engine_is_named(site_registry, run_module):
    result = run_module("image_push", push_params(site_registry, ["itest-push-absent:0"]))
    assert result["failed"], result
    assert "Image itest-push-absent:0 is not in this host's Docker Engine" in result["msg"]
    assert "fleet.images.image_load" in result["msg"]


def test_an_untrusted_certificate_names_the_ca_to_give(site_registry, make_image, run_module, tmp_path):
    name = "itest-push-%s" % uuid.uuid4().hex[:8]
    make_image(name + ":1")
    other_ca = str(tmp_path / "other-ca.crt")
    trustme.CA().cert_pem.write_to_path(other_ca)
    result = run_module("image_push", push_params(site_registry, [name + ":1"], tls_ca=other_ca))
    assert result["failed"], result
    assert "Cannot verify the TLS certificate of registry %s with %s" % (site_registry["registry"], other_ca) in result["msg"]
    assert "tls_ca" in result["msg"]
    assert os.path.exists(other_ca)
