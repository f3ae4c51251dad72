"""Platform comparison between a bundle image and an engine (module_utils/platform.py), without an engine."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.images.plugins.module_utils import platform

AMD64_ENGINE = {"OSType": "linux", "Architecture": "x86_64", "Name": "node1"}
ARM64_ENTRY = {"references": ["app:1"], "os": "linux", "architecture": "arm64"}


@pytest.mark.parametrize("uname, expected", [
    ("x86_64", ("linux", "amd64", None)),
    ("aarch64", ("linux", "arm64", None)),
    ("armv7l", ("linux", "arm", "v7")),
    ("i686", ("linux", "386", None)),
    ("ppc64le", ("linux", "ppc64le", None)),
])
def test_engine_architectures_read_as_image_configs_name_them(uname, expected):
    assert platform.engine_platform({"OSType": "linux", "Architecture": uname}) == expected


@pytest.mark.parametrize("image, engine, runs", [
    (("linux", "amd64", None), ("linux", "amd64", None), True),
    (("linux", "arm64", None), ("linux", "amd64", None), False),
    (("windows", "amd64", None), ("linux", "amd64", None), False),
    (("linux", "arm", "v6"), ("linux", "arm", "v7"), True),
    (("linux", "arm", "v7"), ("linux", "arm", "v6"), False),
    (("linux", "arm", None), ("linux", "arm", "v7"), True),
])
def test_runs_on(image, engine, runs):
    assert platform.runs_on(image, engine) is runs


def test_arm64_variant_is_not_held_against_an_arm64_engine():
    entry = dict(ARM64_ENTRY, variant="v8")
    assert platform.verdict(entry, {"OSType": "linux", "Architecture": "aarch64"}, "fail", "unix:///var/run/docker.sock") is None


def test_fail_names_image_host_engine_both_platforms_and_what_to_do():
    action, message = platform.verdict(ARM64_ENTRY, AMD64_ENGINE, "fail", "unix:///var/run/docker.sock")
    assert action == "failed"
    for part in ("app:1", "linux/arm64", "linux/amd64", "node1", "unix:///var/run/docker.sock", "offline_images_platform_mismatch: skip"):
        assert part in message


def test_skip_says_why_and_load_does_not_compare():
    action, reason = platform.verdict(ARM64_ENTRY, AMD64_ENGINE, "skip", "unix:///var/run/docker.sock")
    assert action == "unchanged" and "linux/arm64" in reason and "linux/amd64" in reason
    assert platform.verdict(ARM64_ENTRY, AMD64_ENGINE, "load", "unix:///var/run/docker.sock") is None


def test_an_entry_that_records_no_architecture_is_not_compared():
    assert platform.verdict({"references": ["old:1"]}, AMD64_ENGINE, "fail", "unix:///var/run/docker.sock") is None
