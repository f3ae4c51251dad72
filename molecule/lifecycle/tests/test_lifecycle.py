"""After converge: bundle 2 brought up with registry_gc (one bundle kept) and the client cleaned up.

The registry no longer holds app:1 and old:1 (only bundle 1 had them); app:2 stays whole and
pullable: blob by blob over HTTPS on the registry host, and through the mirror on Docker 26
(fi-e-client), after removing it there first so that its layer really travels. The client kept
app:1 (a stopped container uses it) and app:2 (its bundle), and lost old:1.
"""

import hashlib
import json

import pytest

REGISTRY = "fi-e-registry:5000"
CA = "/etc/docker/certs.d/%s/ca.crt" % REGISTRY
RECORD = "/etc/fleet-images/registry/registry/bundles.json"
ACCEPT = ("application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, "
          "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json")


def on(host, name):
    if host.backend.get_hostname() != name:
        pytest.skip("%s only" % name)


def fetch(host, path):
    """(HTTP status, body) of GET https://REGISTRY/v2/<path> from the registry host, anonymously (as any client)."""
    out = host.run("curl -s --cacert %s -H %s -w %s https://%s/v2/%s", CA, "Accept: " + ACCEPT, "\n%{http_code}", REGISTRY, path)
    body, _newline, status = out.stdout.rpartition("\n")
    return status, body


def test_the_client_kept_the_image_its_container_uses_and_the_bundles_and_removed_the_rest(host):
    on(host, "fi-e-client")
    assert host.run("docker image inspect fi-e-app:1").rc == 0  # the stopped container fi-e-uses-app1
    assert host.run("docker image inspect fi-e-app:2").rc == 0  # bundle 2
    assert host.run("docker image inspect fi-e-old:1").rc != 0
    assert host.run("docker inspect fi-e-uses-app1").rc == 0


def test_the_registry_dropped_what_the_last_bundle_does_not_hold(host):
    on(host, "fi-e-registry")
    assert fetch(host, "library/fi-e-app/manifests/1")[0] == "404"
    assert fetch(host, "library/fi-e-old/manifests/1")[0] == "404"
    for tag in ("2",):
        status, body = fetch(host, "library/fi-e-app/manifests/%s" % tag)
        assert status == "200", body
        manifest = json.loads(body)
        for blob in [manifest["config"]] + manifest["layers"]:
            got = host.run("curl -s --cacert %s https://%s/v2/library/fi-e-app/blobs/%s | sha256sum", CA, REGISTRY, blob["digest"])
            assert "sha256:" + got.stdout.split()[0] == blob["digest"], "fi-e-app:%s blob %s is broken" % (tag, blob["digest"])


def test_the_record_remembers_the_kept_bundle_root_only(host):
    on(host, "fi-e-registry")
    record = host.file(RECORD)
    assert record.user == "root" and record.mode == 0o600
    bundles = json.loads(record.content_string)["bundles"]
    assert [sorted(bundle["images"]) for bundle in bundles] == [["library/fi-e-app:2"]]
    assert not json.loads(record.content_string)["gc_pending"]


def test_the_push_endpoint_runs_again_and_only_it_may_delete(host):
    on(host, "fi-e-registry")
    for name in ("registry", "registry-push"):
        assert json.loads(host.check_output("docker inspect %s", name))[0]["State"]["Running"], name
    assert host.run("docker ps -a --format '{{.Names}}' | grep -c registry-push-gc").stdout.strip() == "0"
    digest = hashlib.sha256(b"x").hexdigest()
    status = host.run("curl -s -o /dev/null -w '%%{http_code}' --cacert %s -X DELETE https://%s/v2/library/fi-e-app/manifests/sha256:%s",
                      CA, REGISTRY, digest).stdout
    assert status == "405"  # the pull endpoint stays read-only


def test_the_kept_image_pulls_through_the_mirror_on_docker_26_and_the_dropped_ones_do_not(host):
    on(host, "fi-e-client")
    assert host.run("docker rmi fi-e-app:2").rc == 0
    pulled = host.run("docker pull fi-e-app:2")  # the layer travels again, from the registry after its collection
    assert pulled.rc == 0 and "Downloaded newer image" in pulled.stdout, pulled.stderr
    for dropped in ("fi-e-app:1", "fi-e-old:1"):
        assert host.run("docker pull fi-e-registry:5000/library/%s", dropped).rc != 0, dropped
