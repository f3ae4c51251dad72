"""The collection builds into a tarball that installs and documents every module."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


@pytest.fixture(scope="module")
def installed_collection(tmp_path_factory):
    work = tmp_path_factory.mktemp("collection")
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(work), str(REPO_ROOT)], check=True, capture_output=True)
    tarball = next(work.glob("fleet-images-*.tar.gz"))
    install_root = work / "installed"
    subprocess.run(
        ["ansible-galaxy", "collection", "install", "--offline", str(tarball), "-p", str(install_root)],
        check=True, capture_output=True, env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(install_root)),
    )
    return tarball, install_root


def test_tarball_ships_the_collection_and_not_the_lab(installed_collection):
    tarball = installed_collection[0]
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert {"MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml", "plugins/module_utils/docker_client.py"} <= names
    assert not any(name.split("/")[0] in {"lab", "bench", "molecule", "scripts", ".build", ".venv", ".ci"} for name in names)


@pytest.mark.parametrize("module", MODULES)
def test_installed_module_is_documented(installed_collection, module):
    install_root = installed_collection[1]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH="%s:%s" % (install_root, os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")))
    proc = subprocess.run(["ansible-doc", "-t", "module", "--json", "fleet.images.%s" % module], capture_output=True, text=True, env=env, check=True)
    doc = json.loads(proc.stdout)["fleet.images.%s" % module]["doc"]
    assert doc["short_description"]
    assert doc["options"]
    assert str(install_root) in doc["filename"]
