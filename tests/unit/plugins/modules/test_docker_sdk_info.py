"""docker_sdk_info's import probe, without an engine."""

from __future__ import annotations

import sys

from ansible_collections.fleet.images.plugins.modules import docker_sdk_info


def test_versions_of_packages_that_import():
    versions, errors = docker_sdk_info.import_versions(["json", "docker"])
    assert errors == []
    assert versions["json"] and versions["docker"] not in (None, "unknown")


def test_a_missing_package_is_reported_by_name_not_raised():
    versions, errors = docker_sdk_info.import_versions(["docker", "fleet_images_no_such_package"])
    assert versions["fleet_images_no_such_package"] is None
    assert errors == ["fleet_images_no_such_package: No module named 'fleet_images_no_such_package'"]


def test_find_reads_versions_without_importing():
    versions, errors = docker_sdk_info.find_versions(["docker", "json", "this"])
    assert errors == [] and versions["docker"] not in (None, "unknown")
    assert versions["json"] == "unknown"  # a standard library module has no distribution
    # `this` prints the Zen of Python when imported: found, but never imported.
    assert "this" not in sys.modules


def test_find_reports_a_missing_package_by_name():
    versions, errors = docker_sdk_info.find_versions(["fleet_images_no_such_package", "fleet_images_no_such_package.sub"])
    assert versions == {"fleet_images_no_such_package": None, "fleet_images_no_such_package.sub": None}
    assert errors[0] == "fleet_images_no_such_package: No module named 'fleet_images_no_such_package'"
    assert errors[1].startswith("fleet_images_no_such_package.sub: No module named")
