"""The lab itself: recipes are fingerprinted, hosts start with their own engine and go away cleanly."""

from __future__ import annotations

import dataclasses
import os

import docker
import pytest

from lab import engine, hosts, images


def test_a_changed_recipe_gets_a_new_fingerprint():
    recipe = images.RECIPES["host-bookworm"]
    more_packages = dataclasses.replace(recipe, packages=recipe.packages + ("jq",))
    assert recipe.fingerprint() == images.RECIPES["host-bookworm"].fingerprint()
    assert recipe.fingerprint() != more_packages.fingerprint()


@pytest.mark.parametrize("count, distro, expected", [
    (3, "mixed", ["bookworm", "trixie", "bookworm"]),
    (2, "trixie", ["trixie", "trixie"]),
])
def test_distros_alternate_when_mixed(count, distro, expected):
    assert hosts.distros_for(count, distro) == expected


def test_the_mirror_comes_from_apt_sources():
    assert images.debian_mirror().startswith("http")


def test_a_lab_host_runs_its_own_engine_and_is_removed_with_its_socket():
    [host] = hosts.start(1, "itest-lab", "trixie")
    try:
        inner = engine.client(host.docker_host)
        assert inner.version()["Version"].startswith("26.")
        assert inner.info()["Name"] == host.name
        assert host.ip
    finally:
        hosts.stop("itest-lab")
    assert not os.path.exists(host.socket_dir)
    with pytest.raises(docker.errors.NotFound):
        engine.client().containers.get(host.name)
