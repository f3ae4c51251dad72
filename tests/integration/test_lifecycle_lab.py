"""Image lifecycle on lab hosts (issue 14): rollback through playbooks/site.yml with both strategies, and
host backup (playbooks/backup.yml) restored onto a fresh host.

Lab hosts (their own systemd and Docker Engine), reached with the docker connection:
fi-f-lc-1 (bookworm, Docker 20.10) runs the site registry; fi-f-lc-2 (trixie, Docker 26) pulls from it
(registry strategy); fi-f-lc-3 (bookworm) gets tarballs (copy strategy); fi-f-lc-4 (trixie) is the fresh
host a backup is restored onto. The app images are tiny docker-archives (tests/integration/tiny_images.py),
so bundles are small and made in a second.

Rollback: bundle A (app:1, app:latest) -> bundle B (app:2, app:latest) -> A again. Every tag is back on
the earlier image on every host and in the site registry, no image bytes moved for images still
present (the copy strategy sent no tarball, nothing was pulled or loaded, the registry received no
blob), and a rerun reports changed=0.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import docker
import pytest

from module_runner import COLLECTIONS_ROOT, REPO_ROOT
from tiny_images import tiny_image

PREFIX = "fi-f-lc"
APP = "fi-f-rb/app"
LOCAL_DOCKER_HOST = "unix:///var/run/docker.sock"


@pytest.fixture(scope="module")
def lab():
    from lab import engine as lab_engine
    from lab import hosts as lab_hosts
    from lab import images as lab_images

    lab_engine.ensure()
    lab_images.ensure(["host-bookworm", "host-trixie", "registry"])
    started = lab_hosts.start(count=4, prefix=PREFIX, distro="mixed")
    try:
        yield {host.name: host for host in started}
    finally:
        lab_hosts.stop(PREFIX, quiet=True)


@pytest.fixture(scope="module")
def bundles(module_runner, tmp_path_factory):
    """Bundle A (app:1 = app:latest, registry:2) and bundle B (app:2 = app:latest, registry:2), gzip (no zstandard needed)."""
    client = docker.DockerClient(base_url=LOCAL_DOCKER_HOST, version="auto", timeout=120)
    marker = uuid.uuid4().hex[:8]
    ids = {}
    made = {}
    try:
        for name, version in (("A", "1"), ("B", "2")):
            data, ids[name] = tiny_image(["%s:%s" % (APP, version), "%s:latest" % APP], "%s %s\n" % (version, marker))
            client.images.load(data)
            made[name] = str(tmp_path_factory.mktemp("bundle-%s" % name))
            saved = module_runner("image_save", {"images": ["%s:%s" % (APP, version), "%s:latest" % APP, "registry:2"],
                                                 "bundle": made[name], "compression": "gzip", "pull": "never"})
            assert not saved["failed"], saved["msg"]
    finally:
        for tag in ("1", "2", "latest"):
            try:
                client.api.remove_image("%s:%s" % (APP, tag))
            except docker.errors.NotFound:
                pass
    return {"A": made["A"], "B": made["B"], "ids": ids}


def inventory(lab, path):
    names = sorted(lab)
    path.write_text("\n".join([
        "[registry]", names[0], "[docker_hosts]", names[1], "%s site_images_strategy=copy" % names[2], "[fresh]", names[3],
        "[all:vars]", "ansible_connection=community.docker.docker", "ansible_python_interpreter=/usr/bin/python3", "",
    ]))
    return str(path)


def run_playbook(playbook, inventory_path, extra, limit=None, check=False, fails=False):
    """ansible-playbook with the JSON callback: its report; with fails=True, the message of the failed task."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    argv = ["ansible-playbook", "-i", inventory_path, os.path.join(REPO_ROOT, "playbooks", playbook), "-e", json.dumps(extra)]
    if limit:
        argv += ["--limit", limit]
    if check:
        argv.append("--check")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=900)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no report (rc=%s)\n%s\n%s" % (done.returncode, done.stdout[-5000:], done.stderr[-5000:]))
    if fails:
        assert done.returncode != 0
        return [result.get("msg") for play in report["plays"] for task in play["tasks"] for result in task["hosts"].values()
                if result.get("failed")]
    assert done.returncode == 0 and not any(s["failures"] or s["unreachable"] for s in report["stats"].values()), (
        json.dumps([task for play in report["plays"] for task in play["tasks"]
                    if any(h.get("failed") for h in task["hosts"].values())], indent=1)[-6000:] + done.stderr[-3000:])
    assert "[WARNING]" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    return report


def results(report, task_name):
    """{host: result} of every run of the task named `task_name`."""
    found = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == task_name:
                for host, result in task["hosts"].items():
                    if not result.get("skipped"):
                        found[host] = result
    return found


def changed(report):
    return {host: stats["changed"] for host, stats in report["stats"].items()}


def image_id(host, name):
    client = docker.DockerClient(base_url=host.docker_host, version="auto", timeout=60)
    try:
        return client.api.inspect_image(name)["Id"]
    except docker.errors.NotFound:
        return None


def registry_tag_digest(registry_host, tag):
    """The config digest the site registry holds for APP:tag, asked on the registry host (anonymous pull endpoint)."""
    done = subprocess.run(["docker", "exec", registry_host.name, "python3", "-c", (
        "import json, ssl, urllib.request\n"
        "ctx = ssl.create_default_context(cafile='/etc/docker/certs.d/%s:5000/ca.crt')\n"
        "req = urllib.request.Request('https://%s:5000/v2/%s/manifests/%s', headers={'Accept': "
        "'application/vnd.docker.distribution.manifest.v2+json'})\n"
        "print(json.load(urllib.request.urlopen(req, context=ctx))['config']['digest'])\n") % (
            registry_host.name, registry_host.name, APP, tag)], capture_output=True, text=True, check=False)
    return done.stdout.strip() or done.stderr.strip()


def registry_blobs(registry_host):
    """Every blob file in the site registry's storage, with its size (a layer uploaded shows up here)."""
    done = subprocess.run(["docker", "exec", registry_host.name, "find", "/var/lib/fleet-images/registry", "-path", "*/blobs/*",
                           "-name", "data", "-printf", "%P %s\\n"], capture_output=True, text=True, check=True)
    return sorted(done.stdout.splitlines())


def engine_time(host):
    return docker.DockerClient(base_url=host.docker_host, version="auto", timeout=60).info()["SystemTime"]


def image_events(host, since):
    """The image actions (load, pull, tag, ...) the host's engine logged since `since` (its own clock)."""
    client = docker.DockerClient(base_url=host.docker_host, version="auto", timeout=60)
    until = client.info()["SystemTime"]
    return sorted({event["Action"] for event in client.events(since=parse_time(since), until=parse_time(until), decode=True,
                                                              filters={"type": "image"})})


def parse_time(text):
    """Seconds since the epoch (float) from an engine's SystemTime (RFC 3339 with nanoseconds)."""
    from datetime import datetime
    day, rest = text.split("T", 1)
    clock = rest.rstrip("Z").split("+")[0].split("-")[0]
    whole, fraction = (clock.split(".", 1) + ["0"])[:2]
    stamp = datetime.strptime("%sT%s+0000" % (day, whole), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    return stamp + float("0." + (fraction or "0")[:6])


def site(bundle_dir, inventory_path):
    return run_playbook("site.yml", inventory_path, {"bundle": bundle_dir}, limit="registry:docker_hosts")


def test_rollback_moves_every_tag_back_without_moving_image_bytes(lab, bundles, tmp_path):
    inv = inventory(lab, tmp_path / "hosts.ini")
    names = sorted(lab)
    registry_host, nodes = lab[names[0]], [lab[names[1]], lab[names[2]]]
    x, y = bundles["ids"]["A"], bundles["ids"]["B"]

    site(bundles["A"], inv)
    for host in nodes + [registry_host]:
        assert (image_id(host, APP + ":1"), image_id(host, APP + ":latest")) == (x, x), host.name
    site(bundles["B"], inv)
    for host in nodes + [registry_host]:
        assert (image_id(host, APP + ":2"), image_id(host, APP + ":latest")) == (y, y), host.name
    assert registry_tag_digest(registry_host, "latest") == y

    blobs = registry_blobs(registry_host)
    assert blobs
    started = engine_time(registry_host)
    site(bundles["A"], inv)
    for host in nodes + [registry_host]:
        assert (image_id(host, APP + ":1"), image_id(host, APP + ":latest"), image_id(host, APP + ":2")) == (x, x, y), host.name
    assert registry_tag_digest(registry_host, "latest") == x
    assert registry_tag_digest(registry_host, "1") == x
    # No image bytes moved for images still present: no blob reached the registry, and no engine loaded or
    # pulled anything (its own event log: only tags moved).
    assert registry_blobs(registry_host) == blobs
    for host in nodes + [registry_host]:
        actions = image_events(host, started)
        assert "load" not in actions and "pull" not in actions and "tag" in actions, (host.name, actions)

    again = site(bundles["A"], inv)
    assert changed(again) == {name: 0 for name in changed(again)}, changed(again)


def host_run(host, *argv):
    return subprocess.run(["docker", "exec", host.name] + list(argv), capture_output=True, text=True, check=True).stdout


def test_backup_then_restore_onto_a_fresh_host_gives_the_same_image_ids(lab, tmp_path):
    inv = inventory(lab, tmp_path / "hosts.ini")
    names = sorted(lab)
    sources, fresh = [lab[names[1]], lab[names[2]]], lab[names[3]]
    marker = uuid.uuid4().hex[:8]
    wanted = ["fi-f-bk/data:1", "fi-f-bk/data:latest", "fi-f-bk/other:1"]
    for host in sources:
        client = docker.DockerClient(base_url=host.docker_host, version="auto", timeout=60)
        client.images.load(tiny_image(wanted[:2], "data %s %s\n" % (host.name, marker))[0])
        client.images.load(tiny_image(wanted[2:] + ["fi-f-bk/left-out:1"], "other %s\n" % marker)[0])
    dest = tmp_path / "backups"
    # The dated directory is the UTC day: pinned for the whole test, so a run across midnight stays one day.
    extra = {"backup_hosts": "%s:%s" % (names[1], names[2]), "backup_dest": str(dest), "backup_date": time.strftime("%Y-%m-%d", time.gmtime()),
             "backup_images": ["fi-f-bk/data", "fi-f-bk/other:1"], "backup_exclude": ["fi-f-bk/left-out"]}

    refused = run_playbook("backup.yml", inv, dict(extra, backup_keep_free=10 ** 15), fails=True)
    assert any("bytes free" in (msg or "") and "/var/lib/fleet-images/backup" in msg for msg in refused), refused
    assert not dest.exists() or not any(dest.iterdir())

    first = run_playbook("backup.yml", inv, extra)
    for host in sources:
        [dated] = list((dest / host.name).iterdir())
        manifest = json.loads((dated / "bundle.json").read_text())
        assert sorted(ref for entry in manifest["images"] for ref in entry["references"]) == sorted(wanted)
        assert {entry["image_id"] for entry in manifest["images"]} == {image_id(host, ref) for ref in wanted}
    assert results(first, "Fetch the files that differ")

    again = run_playbook("backup.yml", inv, extra)
    assert changed(again) == {name: 0 for name in changed(again)}, changed(again)

    # Restore the bookworm host's backup (Docker 20.10) onto the fresh trixie host (Docker 26).
    source = lab[names[2]]
    [dated] = list((dest / source.name).iterdir())
    run_playbook("restore.yml", inv, {"restore_hosts": fresh.name, "bundle": str(dated)})
    assert {ref: image_id(fresh, ref) for ref in wanted} == {ref: image_id(source, ref) for ref in wanted}
    rerun = run_playbook("restore.yml", inv, {"restore_hosts": fresh.name, "bundle": str(dated)})
    assert changed(rerun)[fresh.name] == 0

    # A file of the host's bundle changed on the way (same size): the controller's check fails naming it.
    tarball = host_run(source, "sh", "-c", "ls /var/lib/fleet-images/backup/bundle/images/*data*").split()[0]
    host_run(source, "sh", "-c", "printf X | dd of=%s bs=1 seek=100 conv=notrunc status=none" % tarball)
    failed = run_playbook("backup.yml", inv, extra, limit=source.name, fails=True)
    assert any(os.path.basename(tarball) in (msg or "") for msg in failed), failed
