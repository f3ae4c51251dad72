"""Collection metadata stays in step with the plugins it describes."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_FILES = sorted((REPO_ROOT / "plugins" / "modules").glob("*.py"))


def module_documentation(path):
    """The module's DOCUMENTATION block, parsed, read without importing the module."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(node.value.value)
    raise AssertionError("%s has no DOCUMENTATION" % path)


def test_every_docker_module_is_in_the_action_group_and_says_so():
    runtime = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text())
    group = set(runtime["action_groups"]["docker"])
    for path in MODULE_FILES:
        fragments = module_documentation(path).get("extends_documentation_fragment", [])
        talks_to_docker = "fleet.images.docker" in fragments
        assert (path.stem in group) == talks_to_docker, "%s: action group membership and doc fragments disagree" % path.name
        if talks_to_docker:
            assert "fleet.images.docker.actiongroup_docker" in fragments, path.name
    assert group <= {p.stem for p in MODULE_FILES}, "meta/runtime.yml names modules that do not exist"


def test_galaxy_metadata_is_complete():
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("fleet", "images")
    assert galaxy["version"] and galaxy["license"] and galaxy["readme"] == "README.md"
    # The lab and the tests (they need the lab and real engines) stay out of the artifact.
    assert "lab" in galaxy["build_ignore"] and "tests" in galaxy["build_ignore"]
