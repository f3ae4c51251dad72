"""The daemon role on Docker 20.10 and Docker 26: what converge and the idempotence run left.

test_daemon_changes.py (collected after this file) then changes the hosts.
"""

import json

MIRROR = "https://mirror.lab.example:5000/"
SECOND_MIRROR = "https://mirror2.lab.example/"
INSECURE = "registry.lab.example:5000"
PROXY = "http://proxy.lab.example:3128"
NO_PROXY = "localhost,127.0.0.1,.lab.example"
DROPIN = "/etc/systemd/system/docker.service.d/http-proxy.conf"


def hostname(host):
    return host.check_output("hostname")


def docker_info(host):
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


def daemon_json(host):
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


def engine_process(host):
    """dockerd's main PID and start time, as systemd records them ("PID MONOTONIC_USEC")."""
    return host.check_output("systemctl show docker --value --property MainPID") + " " + \
        host.check_output("systemctl show docker --value --property ExecMainStartTimestampMonotonic")


def canary_started_at(host):
    return host.check_output("docker inspect --format '{{.State.StartedAt}}' daemon-canary")


def test_docker_info_shows_mirror_insecure_registry_proxies_and_live_restore(host):
    info = docker_info(host)
    assert info["RegistryConfig"]["Mirrors"] == [MIRROR]
    assert info["RegistryConfig"]["IndexConfigs"][INSECURE]["Secure"] is False
    assert (info["HttpProxy"], info["HttpsProxy"], info["NoProxy"]) == (PROXY, PROXY, NO_PROXY)
    assert info["LiveRestoreEnabled"] is True


def test_keys_set_by_someone_else_are_kept(host):
    config = daemon_json(host)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert config["data-root"] == "/var/lib/docker"
    assert config["max-concurrent-downloads"] == 6
    assert docker_info(host)["LoggingDriver"] == "json-file"


def test_proxies_land_where_the_engine_generation_reads_them(host):
    version = docker_info(host)["ServerVersion"]
    config = daemon_json(host)
    if version.startswith("26."):
        assert config["proxies"] == {"http-proxy": PROXY, "https-proxy": PROXY, "no-proxy": NO_PROXY}
        assert not host.file(DROPIN).exists
    else:
        assert version.startswith("20.10."), version
        assert "proxies" not in config
        dropin = host.file(DROPIN)
        assert dropin.exists and dropin.mode == 0o644 and dropin.user == "root"
        assert 'Environment="HTTP_PROXY=%s"' % PROXY in dropin.content_string
        environment = host.check_output("systemctl show docker --property Environment")
        assert "NO_PROXY=%s" % NO_PROXY in environment


def test_each_reload_path_has_a_host(host):
    # bookworm reloads through the unit's ExecReload, trixie (prepare removed it) by signalling MainPID
    exec_reload = host.check_output("systemctl show docker --property ExecReload --value")
    assert bool(exec_reload) == (hostname(host) == "fi-dmn-bookworm"), exec_reload


def test_daemon_json_keeps_its_mode_and_a_backup_of_the_previous_file(host):
    config = host.file("/etc/docker/daemon.json")
    assert (config.mode, config.user, config.group) == (0o644, "root", "root")
    backups = host.check_output("ls /etc/docker/ | grep -c '^daemon.json\\..*~$' || true")
    assert int(backups) >= 1


def test_the_container_started_before_converge_still_runs(host):
    # converge had to restart (proxies); live-restore, reloaded in first, kept the container
    assert host.check_output("docker inspect --format '{{.State.Running}}' daemon-canary") == "true"
    assert canary_started_at(host) == host.file("/root/daemon-canary-started-at").content_string.strip()


def test_the_idempotence_run_restarted_nothing(host):
    assert engine_process(host) == host.file("/root/daemon-engine-after-converge").content_string.strip()
