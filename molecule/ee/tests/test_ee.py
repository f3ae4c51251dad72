"""What the site job in the EE left: images on the Docker host, the credential's user on the
registry, and AWX-readable artifacts (ansible-runner's) with no secret in them."""

import glob
import json
import os

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
JOBS = [os.path.join(EPHEMERAL, "awx", job, "artifacts") for job in ("site-job", "site-check-job")]
PASSWORD = "fe-ee-RegPass-4b1d07"


def test_docker_host_has_the_bundle_image(host):
    if host.backend.get_hostname() != "fe-ee-node":
        return
    assert host.run("docker image inspect fe-ee-hello:1").rc == 0


def test_credential_user_may_push(host):
    if host.backend.get_hostname() != "fe-ee-registry":
        return
    htpasswd = host.file("/etc/fleet-images/registry/registry/push/htpasswd")
    assert htpasswd.mode == 0o600
    assert any(line.startswith("fe-ee-admin:$2") for line in htpasswd.content_string.splitlines())


def test_job_artifacts_show_success_and_no_secret():
    runs = [run for artifacts in JOBS for run in glob.glob(os.path.join(artifacts, "*"))]
    # converge and idempotence: the site job and the check job twice each.
    assert len(runs) == 4
    for run in runs:
        with open(os.path.join(run, "status")) as handle:
            assert handle.read().strip() == "successful"
        with open(os.path.join(run, "rc")) as handle:
            assert handle.read().strip() == "0"
        with open(os.path.join(run, "stdout")) as handle:
            stdout = handle.read()
        assert PASSWORD not in stdout and "PLAY RECAP" in stdout
        assert "WARNING" not in stdout and "ERROR" not in stdout
        events = [json.load(open(path)) for path in glob.glob(os.path.join(run, "job_events", "*.json"))]
        assert not [e for e in events if PASSWORD in json.dumps(e)]
        tasks = {e["event_data"].get("task") for e in events if e["event"] == "runner_on_ok"}
        assert "Show what each Docker host holds and what it got in this run" in tasks
