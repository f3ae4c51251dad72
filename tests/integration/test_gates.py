"""The ecosystem's own gates on the built collection: Galaxy's importer, antsibull-docs,
antsibull-changelog and ansible-builder's introspection (issue 12). Each runs offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from ansible_collections.fleet.images.plugins.module_utils import image_result

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COLLECTIONS = REPO_ROOT / ".build" / "collections"
GALAXY = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
# Galaxy's importer without the parts that need a network (ansible-test's containers, the
# online ansible-lint); the lint runs in scripts/test's own lint part.
IMPORTER_CONFIG = "[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = False\n"
CACHES = {".ansible", ".idea", ".vscode", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".git", ".venv", ".cache", ".build"}


def run(argv, cwd=REPO_ROOT, **env):
    environment = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), **env)
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=environment, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    work = tmp_path_factory.mktemp("gates")
    # A tool cache in the checkout, as a non-offline ansible-lint run leaves it, must stay out.
    stray = REPO_ROOT / ".ansible" / "fe-gates-probe.txt"
    created = not stray.parent.exists()
    stray.parent.mkdir(exist_ok=True)
    stray.write_text("not for the artifact\n")
    try:
        proc = run([BIN / "ansible-galaxy", "collection", "build", "--output-path", work, REPO_ROOT])
    finally:
        stray.unlink()
        if created:
            stray.parent.rmdir()
    assert proc.returncode == 0, proc.stderr
    return next(work.glob("fleet-images-*.tar.gz"))


def test_galaxy_importer_accepts_the_tarball(tarball):
    config = tarball.parent / "importer.cfg"
    config.write_text(IMPORTER_CONFIG)
    proc = run([sys.executable, "-m", "galaxy_importer.main", tarball], cwd=tarball.parent, GALAXY_IMPORTER_CONFIG=str(config))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Importer processing completed successfully" in output
    assert not re.search(r"\b(ERROR|WARNING)\b", output), output
    metadata = json.loads((tarball.parent / "importer_result.json").read_text())["metadata"]
    for key in ("repository", "documentation", "homepage", "issues"):
        assert metadata[key].startswith("https://"), key


def test_tarball_ships_the_licence_and_no_cache_or_lab_bound_test(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        licence = archive.extractfile("LICENSE").read().decode()
        manifest = json.load(archive.extractfile("MANIFEST.json"))
        python_files = [archive.extractfile(m).read().decode() for m in archive.getmembers() if m.name.endswith(".py")]
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 3, 29 June 2007" in licence
    assert manifest["collection_info"]["license"] == ["GPL-3.0-or-later"]
    assert not [n for n in names if set(n.split("/")) & CACHES or n.startswith(("tests", "lab", "ee/", "changelogs/fragments"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # Nothing shipped imports what is not shipped.
    assert not [text for text in python_files if re.search(r"^\s*(import lab|from lab)\b", text, re.MULTILINE)]


def test_collection_has_no_dependency_to_fetch(tarball):
    """An air-gapped controller has no Galaxy: installing the tarball must need nothing else."""
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["dependencies"] == {}


def test_antsibull_docs_lint_is_clean():
    tree = COLLECTIONS / "ansible_collections" / "fleet" / "images"
    proc = run([BIN / "antsibull-docs", "lint-collection-docs", "--plugin-docs", "."], cwd=tree)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_changelog_has_the_release_galaxy_yml_names():
    proc = run([BIN / "antsibull-changelog", "lint"])
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    changes = yaml.safe_load((REPO_ROOT / "changelogs" / "changelog.yaml").read_text())
    release = changes["releases"][GALAXY["version"]]
    assert release["changes"]["release_summary"] and release["modules"]
    assert "\nv%s\n" % GALAXY["version"] in (REPO_ROOT / "CHANGELOG.rst").read_text()
    # Nothing has been published yet: every fragment belongs to this release.
    fragments = {p.name for p in (REPO_ROOT / "changelogs" / "fragments").glob("*.yml")}
    missing = fragments - set(release["fragments"])
    assert not missing, "fragments not in release %s: %s; run antsibull-changelog release --version %s --update-existing" % (
        GALAXY["version"], sorted(missing), GALAXY["version"])


def test_introspection_lists_exactly_what_the_controller_side_needs():
    proc = run([BIN / "ansible-builder", "introspect", "--sanitize", COLLECTIONS])
    assert proc.returncode == 0, proc.stderr
    found = yaml.safe_load(proc.stdout.split("---", 1)[1])
    names = [re.split(r"[<>=!~ ]", line, maxsplit=1)[0] for line in found["python"]]
    assert names == ["docker", "requests", "zstandard", "cryptography", "bcrypt"]
    assert all(line.endswith("# from collection fleet.images") for line in found["python"])
    assert found["system"] == []


# Issue 12 item 4: what AWX, antsibull-docs and a reader see of every module's results.
# Contract C2: the modules that handle images return `images`, one item per image, with these keys.
IMAGE_MODULES = ("image_save", "image_load", "image_pull", "image_push", "bundle_info")
IMAGE_ITEM = {"reference": "str", "references": "list", "image_id": "str", "action": "str", "bytes": "int"}
ACTIONS = set(image_result.ACTIONS)
MODULES = sorted(p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py"))
SAMPLE_TYPES = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict, "float": (int, float)}


@pytest.fixture(scope="module")
def module_docs():
    """Every module's documentation as ansible-doc renders it (doc fragments merged)."""
    listed = run([BIN / "ansible-doc", "-t", "module", "--list", "--json", "fleet.images"])
    assert listed.returncode == 0, listed.stderr
    names = sorted(json.loads(listed.stdout))
    assert names == ["fleet.images." + name for name in MODULES]
    proc = run([BIN / "ansible-doc", "-t", "module", "--json", *names])
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    return {name.split(".")[-1]: doc for name, doc in json.loads(proc.stdout).items()}


def return_problems(values, path=""):
    """What a RETURN block (recursively through `contains`) lacks: a sample of the documented type
    for every value, and `contains` for every list of dicts and every dict whose values are dicts."""
    problems = []
    for name, spec in (values or {}).items():
        where = path + name
        sample = spec.get("sample")
        if "sample" not in spec:
            problems.append("%s: no sample" % where)
        elif sample is not None and not isinstance(sample, SAMPLE_TYPES.get(spec.get("type"), object)):
            problems.append("%s: the sample is not a %s" % (where, spec.get("type")))
        of_dicts = spec.get("elements") == "dict" or (
            isinstance(sample, dict) and any(isinstance(value, dict) for value in sample.values()))
        if of_dicts and not spec.get("contains"):
            problems.append("%s: a list or dict of dicts without contains" % where)
        problems += return_problems(spec.get("contains"), where + ".")
    return problems


@pytest.mark.parametrize("name", MODULES)
def test_module_documents_each_result_with_a_sample(module_docs, name):
    doc = module_docs[name]
    assert doc["doc"]["short_description"] and doc["doc"]["description"], name
    assert doc["return"], "%s documents no RETURN" % name
    problems = return_problems(doc["return"])
    assert not problems, "%s:\n%s" % (name, "\n".join(problems))


def test_return_problems_finds_what_is_missing():
    """The check above fails on what it exists to catch (a nested missing sample, a list of dicts
    without contains, a sample of the wrong type, a dict of dicts)."""
    doc = {
        "ok": {"type": "list", "elements": "dict", "sample": [{"a": 1}], "contains": {"a": {"type": "int", "sample": 1}}},
        "nested": {"type": "list", "elements": "dict", "sample": [], "contains": {"b": {"type": "str"}}},
        "bare": {"type": "list", "elements": "dict", "sample": [{"c": 1}]},
        "typed": {"type": "int", "sample": "3"},
        "deep": {"type": "dict", "sample": {"x": {"y": 1}}},
    }
    assert return_problems(doc) == [
        "nested.b: no sample", "bare: a list or dict of dicts without contains",
        "typed: the sample is not a int", "deep: a list or dict of dicts without contains"]


@pytest.mark.parametrize("name", MODULES)
def test_image_modules_return_one_item_shape(module_docs, name):
    """Contract C2: `images`, a list of dicts with reference, references, image_id, action, bytes: from
    the modules that handle images, and from any other module that returns `images`."""
    images = module_docs[name]["return"].get("images")
    if name not in IMAGE_MODULES and images is None:
        return
    assert images and images.get("type") == "list" and images.get("elements") == "dict", name
    contains = images.get("contains") or {}
    for key, kind in IMAGE_ITEM.items():
        assert key in contains and contains[key].get("type") == kind, "%s: images.%s (%s)" % (name, key, kind)
    assert contains["references"].get("elements") == "str", name
    actions = set(contains["action"].get("choices") or ACTIONS)
    assert actions <= ACTIONS, "%s: images.action choices %s" % (name, sorted(actions))
    assert images["sample"], "%s: images has an empty sample" % name
    for item in images["sample"]:
        assert set(IMAGE_ITEM) <= set(item) and item["action"] in actions, "%s: sample %s" % (name, item)
