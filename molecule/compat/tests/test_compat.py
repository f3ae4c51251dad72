"""The support matrix as README's table claims it, checked on the run itself: the controller's
ansible-core and Python, each host's Python and Docker Engine; and what the converge did on both
engine generations with that ansible-core (the other host's image loaded, the mirror applied)."""

import os
import re
import sys
from pathlib import Path

import ansible.release
import yaml

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
README = (REPO / "README.md").read_text()
PEER = {"bookworm": "trixie", "trixie": "bookworm"}
MIRROR = "https://fi-d-mirror.example:15400/"


def matrix():
    """README's support matrix: one row per controller ansible-core and managed host."""
    section = README.split("## Support matrix", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0]]
    return [dict(zip(header, (re.sub(r"[`*]", "", cell).strip() for cell in row))) for row in rows[1:]
            if not set(row[0].strip()) <= set("-")]


def pinned(requirements, name):
    text = (REPO / "requirements" / requirements).read_text()
    return re.search(r"^%s==([\d.]+)$" % re.escape(name), text, re.MULTILINE).group(1)


def version_of(cell):
    return re.match(r"[\d.]+", cell).group(0)


def test_the_table_names_what_setup_installs_and_runtime_claims():
    cores = sorted({version_of(row["Controller ansible-core"]) for row in matrix()}, key=lambda v: tuple(map(int, v.split("."))))
    assert cores == [pinned("compat.txt", "ansible-core"), pinned("controller.txt", "ansible-core")]
    oldest = cores[0].split(".")
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=%s.%s.0" % (oldest[0], oldest[1])


def test_this_controller_is_a_row_of_the_table():
    rows = [row for row in matrix() if version_of(row["Controller ansible-core"]) == ansible.release.__version__]
    assert rows, "ansible-core %s runs this scenario but is not in README's support matrix" % ansible.release.__version__
    assert {row["Controller Python"] for row in rows} == {"%d.%d" % sys.version_info[:2]}


def test_host_runs_the_python_and_docker_the_table_claims(host):
    codename = host.run("sh -c '. /etc/os-release && echo $VERSION_CODENAME'").stdout.strip()
    rows = [row for row in matrix() if version_of(row["Controller ansible-core"]) == ansible.release.__version__
            and codename in row["Managed host"]]
    assert len(rows) == 1, "no single row for %s with ansible-core %s" % (codename, ansible.release.__version__)
    python = host.run("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").stdout.strip()
    assert python == rows[0]["Managed Python"]
    docker = host.run("docker version --format '{{.Server.Version}}'").stdout.strip()
    assert docker.startswith(rows[0]["Docker Engine"] + "."), (docker, rows[0]["Docker Engine"])


def test_host_loaded_the_other_generations_image(host):
    codename = host.run("sh -c '. /etc/os-release && echo $VERSION_CODENAME'").stdout.strip()
    image = "fi-d-compat/%s:1" % PEER[codename]
    run = host.run("docker run --rm %s" % image)
    assert run.rc == 0 and run.stdout.strip() == "hello from fi-d-compat-%s" % PEER[codename], run.stderr


def test_engine_runs_with_the_merged_mirror(host):
    assert MIRROR in host.run("docker info --format '{{json .RegistryConfig.Mirrors}}'").stdout
