"""Reading the engine's systemd unit: the flags dockerd already gets and the daemon.json keys they clash with."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.images.plugins.module_utils import daemon_schema as schema
from ansible_collections.fleet.images.plugins.module_utils import dockerd_flags as flags
from ansible_collections.fleet.images.plugins.module_utils import systemd_unit

# What `systemctl cat docker` prints on a lab host: Debian's unit, then the lab's drop-in.
DEBIAN_UNIT = """# /lib/systemd/system/docker.service
[Unit]
Description=Docker Application Container Engine
Requires=docker.socket

[Service]
Type=notify
EnvironmentFile=-/etc/default/docker
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS
ExecReload=/bin/kill -s HUP $MAINPID
# /usr/share/doc/docker.io explains the socket
Restart=on-failure
"""

LAB_DROPIN = """
# /etc/systemd/system/docker.service.d/10-lab.conf
[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd -H fd:// -H unix:///lab/docker.sock \\
    --containerd=/run/containerd/containerd.sock
Environment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
"""


def test_parse_unit_follows_drop_ins_and_continuations():
    unit = systemd_unit.parse_unit(DEBIAN_UNIT + LAB_DROPIN)
    assert unit.files == ["/lib/systemd/system/docker.service", "/etc/systemd/system/docker.service.d/10-lab.conf"]
    assert unit.exec_start_file == "/etc/systemd/system/docker.service.d/10-lab.conf"
    assert systemd_unit.expand_exec_start(unit.exec_start, unit.environment) == [
        "/usr/sbin/dockerd", "-H", "fd://", "-H", "unix:///lab/docker.sock", "--containerd=/run/containerd/containerd.sock"]
    assert unit.environment == {"DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE": "1"}
    assert unit.environment_files == [("/etc/default/docker", True)]
    assert unit.exec_reload is True


def test_an_empty_exec_start_without_a_new_one_leaves_none():
    unit = systemd_unit.parse_unit(DEBIAN_UNIT + "\n# /etc/systemd/system/docker.service.d/x.conf\n[Service]\nExecStart=\nExecReload=\n")
    assert unit.exec_start is None
    assert unit.exec_reload is False


def test_a_unit_read_without_systemctl_is_named_by_the_caller():
    unit = systemd_unit.parse_unit("[Service]\nExecStart=/usr/bin/dockerd -H fd://\n", default_file="/usr/lib/systemd/system/docker.service")
    assert unit.exec_start_file == "/usr/lib/systemd/system/docker.service"
    assert unit.files == ["/usr/lib/systemd/system/docker.service"]


@pytest.mark.parametrize("exec_start, environment, argv", [
    ("/usr/sbin/dockerd -H fd:// $DOCKER_OPTS", {"DOCKER_OPTS": "--debug  --registry-mirror https://m.example"},
     ["/usr/sbin/dockerd", "-H", "fd://", "--debug", "--registry-mirror", "https://m.example"]),
    ("/usr/sbin/dockerd $DOCKER_OPTS", {}, ["/usr/sbin/dockerd"]),
    ("-/usr/bin/dockerd --data-root=${ROOT}/docker", {"ROOT": "/srv"}, ["/usr/bin/dockerd", "--data-root=/srv/docker"]),
    ('@/usr/bin/dockerd dockerd --label "site=a b"', {}, ["/usr/bin/dockerd", "dockerd", "--label", "site=a b"]),
])
def test_expand_exec_start(exec_start, environment, argv):
    assert systemd_unit.expand_exec_start(exec_start, environment) == argv


def test_expand_exec_start_names_a_broken_line():
    with pytest.raises(systemd_unit.UnitError, match="cannot read ExecStart="):
        systemd_unit.expand_exec_start('/usr/bin/dockerd --label "unclosed', {})


@pytest.mark.parametrize("argv, expected", [
    (["dockerd", "-H", "fd://", "--containerd=/run/c.sock"], [("-H", "fd://", "hosts"), ("--containerd", "/run/c.sock", "containerd")]),
    (["dockerd", "-Hfd://", "-D", "--live-restore", "--registry-mirror", "https://m.example"],
     [("-H", "fd://", "hosts"), ("-D", "", "debug"), ("--live-restore", "", "live-restore"),
      ("--registry-mirror", "https://m.example", "registry-mirrors")]),
    (["dockerd", "--iptables=false", "--insecure-registry", "r.example:5000", "--log-opt", "max-size=1m", "--label", "a=b"],
     [("--iptables", "false", "iptables"), ("--insecure-registry", "r.example:5000", "insecure-registries"),
      ("--log-opt", "max-size=1m", "log-opts"), ("--label", "a=b", "labels")]),
    (["dockerd", "--config-file", "/etc/docker/other.json", "--http-proxy", "http://p.example"],
     [("--config-file", "/etc/docker/other.json", None), ("--http-proxy", "http://p.example", "http-proxy")]),
    (["dockerd"], []),
])
def test_dockerd_flags(argv, expected):
    assert [tuple(flag) for flag in flags.dockerd_flags(argv)] == expected


def test_config_file_flag():
    assert flags.config_file_flag(flags.dockerd_flags(["dockerd", "--config-file=/srv/d.json"])) == "/srv/d.json"
    assert flags.config_file_flag(flags.dockerd_flags(["dockerd", "-H", "fd://"])) is None


UNIT_FILE = "/etc/systemd/system/docker.service.d/10-lab.conf"


@pytest.mark.parametrize("config, argv, conflicting_paths", [
    # the classic: hosts in daemon.json while the unit passes -H fd://
    ({"hosts": ["unix:///var/run/docker.sock"]}, ["dockerd", "-H", "fd://"], ["hosts"]),
    ({"hosts": ["tcp://0.0.0.0:2376"]}, ["dockerd", "--host=fd://"], ["hosts"]),
    ({"registry-mirrors": ["https://m.example"]}, ["dockerd", "--registry-mirror", "https://other.example"], ["registry-mirrors"]),
    ({"debug": True}, ["dockerd", "-D"], ["debug"]),
    ({"containerd": "/run/c.sock", "log-opts": {"max-size": "1m"}}, ["dockerd", "--containerd", "/run/c.sock"], ["containerd"]),
    # nested objects are flattened as dockerd does: proxies.http-proxy against --http-proxy
    ({"proxies": {"http-proxy": "http://p.example:3128"}}, ["dockerd", "--http-proxy", "http://a:b@p.example"], ["proxies.http-proxy"]),
    # flat objects are not: a log-opts entry named like a flag is no clash
    ({"log-opts": {"debug": "1"}}, ["dockerd", "-D"], []),
    # runtimes may come from both places
    ({"runtimes": {"runsc": {"path": "/usr/bin/runsc"}}}, ["dockerd", "--add-runtime", "crun=/usr/bin/crun"], []),
    ({"registry-mirrors": ["https://m.example"]}, ["dockerd", "-H", "fd://", "--containerd=/run/c.sock"], []),
])
def test_find_flag_conflicts(config, argv, conflicting_paths):
    conflicts = schema.find_flag_conflicts(config, flags.dockerd_flags(argv), UNIT_FILE)
    assert [conflict[0] for conflict in conflicts] == conflicting_paths
    for path, top, message in conflicts:
        assert top == path.split(".")[0]
        assert UNIT_FILE in message and "'%s'" % path in message
        assert "xxxxx" in message or ":b@" not in message


def test_conflict_message_names_key_flag_and_file():
    [conflict] = schema.find_flag_conflicts({"hosts": ["unix:///x"]}, flags.dockerd_flags(["dockerd", "-H", "fd://"]), UNIT_FILE)
    message = conflict[2]
    assert message.startswith("daemon.json key 'hosts' conflicts with the flag '-H fd://' that %s passes to dockerd" % UNIT_FILE)


@pytest.mark.parametrize("text, env", [
    ("# comment\nDOCKER_OPTS=\"--debug --label a=b\"\nexport OTHER='x y'\n\nbroken line\n", {"DOCKER_OPTS": "--debug --label a=b", "OTHER": "x y"}),
    ("", {}),
])
def test_parse_environment_file(text, env):
    assert systemd_unit.parse_environment_file(text) == env


# --- the proxy drop-in ---------------------------------------------------------------------

@pytest.mark.parametrize("proxies", [
    {"http-proxy": "http://proxy.example:3128", "https-proxy": "http://proxy.example:3128", "no-proxy": "localhost,127.0.0.1,.corp"},
    {"http-proxy": "http://user:p%40ss\"w\\rd@proxy.example:3128"},
    {"no-proxy": "*.example"},
])
def test_proxy_dropin_round_trips(proxies):
    text = systemd_unit.render_proxy_dropin(proxies)
    assert systemd_unit.is_managed(text)
    assert text.splitlines()[3] == "[Service]"
    assert systemd_unit.parse_proxy_dropin(text) == proxies
    # systemd would read %40 as a specifier: it must be doubled
    if "%40" in proxies.get("http-proxy", ""):
        assert "p%%40ss" in text


def test_parse_proxy_dropin_reads_a_hand_written_file():
    text = '[Service]\nEnvironment="http_proxy=http://a.example:3128" "NO_PROXY=localhost"\nEnvironment=HTTPS_PROXY=http://b.example\n'
    assert systemd_unit.parse_proxy_dropin(text) == {"http-proxy": "http://a.example:3128", "no-proxy": "localhost", "https-proxy": "http://b.example"}
    assert not systemd_unit.is_managed(text)


def test_one_reader_for_the_unit_and_the_drop_in():
    # the drop-in is read by parse_unit: the same quoting, %% and reset rules as the unit's Environment=
    unit = systemd_unit.parse_unit('[Service]\nEnvironment="A=50%%" B=x\nEnvironment=\nEnvironment="HTTP_PROXY=http://u:p%%40s@p.example"\n')
    assert unit.environment == {"HTTP_PROXY": "http://u:p%40s@p.example"}
    assert systemd_unit.parse_proxy_dropin('[Service]\nEnvironment="HTTP_PROXY=http://u:p%%40s@p.example"\n') == {
        "http-proxy": "http://u:p%40s@p.example"}
    # outside [Service], nothing is read
    assert systemd_unit.parse_proxy_dropin("[Unit]\nEnvironment=HTTP_PROXY=http://p.example\n") == {}
