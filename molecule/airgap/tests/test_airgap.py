"""The air-gapped site after converge: images with the bundle's IDs on every Docker host, pulls of
Docker Hub names through the site mirror, containers that run, and runs that move no tarball."""

from __future__ import annotations

import json
import os

import pytest

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
SCENARIO = os.path.join(PROJECT, "molecule", "airgap")
BUNDLE = os.path.join(EPHEMERAL, "bundle")
DOCKER_HOSTS = ["airgap-node1", "airgap-node2", "airgap-node3"]
HELLO = "airgap-hello:1"
APP = "registry.example.com/fleet/airgap-app:1"

ADDRESSES = {"airgap-node1": "10.230.77.11", "airgap-node2": "10.230.77.12", "airgap-node3": "10.230.77.13"}
SSH_CONFIG = os.path.join(EPHEMERAL, "ssh_config")


def write_ssh_config():
    """What the inventory gives Ansible, for testinfra's plain SSH backend (the ansible backend
    starts Ansible for every command: ten times slower here)."""
    with open(SSH_CONFIG, "w") as handle:
        handle.write("Host *\n  User root\n  IdentityFile %s\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                     "  LogLevel ERROR\n" % os.path.join(EPHEMERAL, "id_ed25519"))


write_ssh_config()
testinfra_hosts = ["ssh://%s?ssh_config=%s&controlpersist=60" % (ADDRESSES[name], SSH_CONFIG) for name in DOCKER_HOSTS]


def manifest_ids():
    with open(os.path.join(BUNDLE, "bundle.json")) as handle:
        manifest = json.load(handle)
    return {reference: entry["image_id"] for entry in manifest["images"] for reference in entry["references"]}


@pytest.mark.parametrize("reference", [HELLO, APP])
def test_every_docker_host_has_the_bundle_images_with_their_ids(host, reference):
    expected = manifest_ids()[reference]
    got = host.check_output("docker image inspect --format '{{.Id}}' %s", reference)
    assert got == expected


def test_the_registry_image_stays_on_the_registry_host(host):
    # offline_images_exclude in site.yml: Docker hosts do not get the registry image
    assert host.run("docker image inspect registry:2").rc != 0


def test_a_container_from_a_bundle_image_runs(host):
    assert host.check_output("docker run --rm %s", HELLO) == "hello from the bundle"


def test_the_host_without_an_sdk_uses_the_one_from_the_wheels(host):
    if host.backend.get_hostname() != ADDRESSES["airgap-node3"]:
        pytest.skip("only airgap-node3 lacks python3-docker")
    assert host.run("python3 -c 'import docker'").rc != 0
    assert host.run("/opt/fleet-images/venv/bin/python -c 'import docker, requests, zstandard'").rc == 0


def test_hosts_that_load_the_zstd_bundle_read_it_with_zstandard_from_the_wheels(host):
    # The lab hosts' Python lacks zstandard and the bundle is zstd: a host that loads tarballs (the
    # registry host, and airgap-node3 by the copy strategy) gets the wheel that fits its Python (the
    # bundle has one per CPython) in its SDK environment. The others pull from the site registry,
    # read no tarball and need no zstandard (no wheel is sent to them for it).
    assert host.run("python3 -c 'import zstandard'").rc != 0
    if host.backend.get_hostname() in (ADDRESSES["airgap-node1"], ADDRESSES["airgap-node2"]):
        pytest.skip("pulls from the site registry")
    assert host.run("/opt/fleet-images/venv/bin/python -c 'import zstandard'").rc == 0


def test_a_docker_hub_name_is_pulled_through_the_site_mirror(host):
    # The internal network has no route out: the pull can only succeed through the site mirror.
    # (No negative case: a name the mirror lacks makes dockerd try Docker Hub itself.)
    expected = manifest_ids()[HELLO]
    host.check_output("docker image rm %s", HELLO)
    pulled = host.run("docker pull %s", HELLO)
    assert pulled.rc == 0, pulled.stderr
    assert host.check_output("docker image inspect --format '{{.Id}}' %s", HELLO) == expected


def test_the_copies_were_removed(host):
    assert not host.file("/var/lib/fleet-images/staging/images").exists or host.file("/var/lib/fleet-images/staging/images").listdir() == []
