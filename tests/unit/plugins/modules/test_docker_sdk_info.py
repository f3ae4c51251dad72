"""docker_sdk_info's import probe, without an engine."""

from __future__ import annotations

from ansible_collections.fleet.images.plugins.modules import docker_sdk_info


def test_versions_of_packages_that_import():
    versions, errors = docker_sdk_info.import_versions(["json", "docker"])
    assert errors == []
    assert versions["json"] and versions["docker"] not in (None, "unknown")


def test_a_missing_package_is_reported_by_name_not_raised():
    versions, errors = docker_sdk_info.import_versions(["docker", "fleet_images_no_such_package"])
    assert versions["fleet_images_no_such_package"] is None
    assert errors == ["fleet_images_no_such_package: No module named 'fleet_images_no_such_package'"]
