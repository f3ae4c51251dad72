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
        assert "Show what each host got in this run" in tasks


C2_KEYS = {"reference", "references", "image_id", "action", "bytes"}


def job_summaries(job):
    """Each run's `fleet_images` from set_stats, as AWX gets it: the artifact_data of the stats event."""
    summaries = []
    for run in glob.glob(os.path.join(EPHEMERAL, "awx", job, "artifacts", "*")):
        events = [json.load(open(path)) for path in glob.glob(os.path.join(run, "job_events", "*.json"))]
        stats = [event for event in events if event["event"] == "playbook_on_stats"]
        assert len(stats) == 1, run
        summaries.append(stats[0]["event_data"]["artifact_data"]["fleet_images"])
    return summaries


def test_job_artifacts_carry_the_site_summary():
    """The site job's artifacts: per Docker host its strategy and one C2 item per image; the
    registry's pushed images; the first run pulled and pushed, every later run (and every check job)
    predicts nothing to move."""
    site, check = job_summaries("site-job"), job_summaries("site-check-job")
    assert len(site) == 2 and len(check) == 2
    for summary in site + check:
        assert summary["check_mode"] == (summary in check)
        assert list(summary["hosts"]) == ["fe-ee-node"] and summary["registry"]["host"] == "fe-ee-registry"
        node = summary["hosts"]["fe-ee-node"]
        assert node["strategy"] == "registry" and node["bytes_sent"] == 0
        for item in node["images"] + summary["registry"]["images"]:
            assert C2_KEYS <= set(item) and item["reference"] == "fe-ee-hello:1", item
            assert item["image_id"].startswith("sha256:")
    first = [s for s in site if s["bytes"] > 0]
    assert len(first) == 1
    assert [i["action"] for i in first[0]["hosts"]["fe-ee-node"]["images"]] == ["pulled"]
    assert [i["action"] for i in first[0]["registry"]["images"]] == ["pushed"]
    for summary in [s for s in site + check if s is not first[0]]:
        assert summary["bytes"] == 0
        assert {i["action"] for i in summary["hosts"]["fe-ee-node"]["images"] + summary["registry"]["images"]} == {"unchanged"}
