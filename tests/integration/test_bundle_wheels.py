"""bundle_wheels on a bundle directory: lists every wheel with its size and sha256 in bundle.json and
SHA256SUMS, changes nothing on a second run, writes nothing in check mode; `bundle` is its option
(`path` an alias, as in bundle_info)."""

from __future__ import annotations

import hashlib
import json

import pytest


@pytest.fixture()
def bundle(tmp_path):
    directory = tmp_path / "bundle"
    (directory / "wheels").mkdir(parents=True)
    (directory / "bundle.json").write_text(json.dumps({"format": "fleet.images/bundle", "version": 1, "images": []}))
    (directory / "SHA256SUMS").write_text("")
    (directory / "wheels" / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a zip, but bytes to hash\n" * 10)
    return directory


def test_lists_the_wheels_once_and_checks_in_check_mode(bundle, module_runner):
    wheel = bundle / "wheels" / "demo-1.0-py3-none-any.whl"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    checked = module_runner("bundle_wheels", {"bundle": str(bundle)}, check_mode=True)
    assert not checked["failed"] and checked["changed"], checked
    assert "wheels" not in json.loads((bundle / "bundle.json").read_text())
    done = module_runner("bundle_wheels", {"bundle": str(bundle)})
    assert not done["failed"] and done["changed"], done
    assert done["wheels"] == [{"file": "wheels/demo-1.0-py3-none-any.whl", "size": wheel.stat().st_size, "sha256": digest}]
    assert json.loads((bundle / "bundle.json").read_text())["wheels"] == done["wheels"]
    assert "%s  wheels/demo-1.0-py3-none-any.whl" % digest in (bundle / "SHA256SUMS").read_text()
    again = module_runner("bundle_wheels", {"path": str(bundle)})
    assert not again["failed"] and not again["changed"] and again["wheels"] == done["wheels"], again
    assert not module_runner("bundle_wheels", {"bundle": str(bundle)}, check_mode=True)["changed"]


def test_a_directory_without_a_manifest_fails_naming_it(tmp_path, module_runner):
    result = module_runner("bundle_wheels", {"bundle": str(tmp_path)})
    assert result["failed"] and str(tmp_path) in result["msg"], result
