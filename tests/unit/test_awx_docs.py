"""docs/awx.md and the AWX files it describes agree with each other and with the playbooks.
(The Molecule scenario `ee` runs those files; this checks what a reader copies by hand.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = (REPO_ROOT / "docs" / "awx.md").read_text()
AWX = REPO_ROOT / "docs" / "awx"


def test_every_file_the_guide_names_exists():
    named = set(re.findall(r"`((?:docs|ee|meta|requirements)/[\w./-]+)`", GUIDE))
    assert {"docs/awx/project/site.yml", "docs/awx/survey-site.json", "docs/awx/credential-type.yml"} <= named
    assert not [path for path in named if not (REPO_ROOT / path).exists()]


def test_survey_asks_for_what_the_site_playbook_reads():
    site = (REPO_ROOT / "playbooks" / "site.yml").read_text()
    survey = json.loads((AWX / "survey-site.json").read_text())
    for question in survey["spec"]:
        assert re.search(r"\b%s\b" % question["variable"], site), question["variable"]
        assert "`%s`" % question["variable"] in GUIDE and str(question["default"]) in GUIDE


def test_credential_injects_what_the_wrapper_reads():
    credential = yaml.safe_load((AWX / "credential-type.yml").read_text())
    fields = {field["id"] for field in credential["inputs"]["fields"]}
    assert set(credential["inputs"]["required"]) == fields
    assert [f["id"] for f in credential["inputs"]["fields"] if f.get("secret")] == ["password"]
    wrapper = (AWX / "project" / "site.yml").read_text()
    for name, template in credential["injectors"]["extra_vars"].items():
        assert re.fullmatch(r"\{\{ (\w+) \}\}", template).group(1) in fields
        assert name in wrapper and "`%s`" % name in GUIDE
