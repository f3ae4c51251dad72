"""daemon_config's own decisions, without an engine: option handling, proxy method, unit files, and
main() end to end on files under tmp_path with no engine and no dockerd reachable."""

from __future__ import annotations

import contextlib
import json
import os

import pytest

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19 (the support matrix's oldest): what that helper does
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved

from ansible_collections.fleet.images.plugins.module_utils import daemon_change, daemon_host, systemd_unit
from ansible_collections.fleet.images.plugins.modules import daemon_config

NO_ENGINE = "unix:///nonexistent/fleet-images-test.sock"


def params(**given):
    base = dict(settings={}, registry_mirrors=None, insecure_registries=None, proxies=None)
    base.update(given)
    return base


@pytest.mark.parametrize("given, overlay, problems", [
    (params(registry_mirrors=["https://m.example"]), {"registry-mirrors": ["https://m.example"]}, []),
    (params(settings={"debug": True}, insecure_registries=["r.example:5000"]), {"debug": True, "insecure-registries": ["r.example:5000"]}, []),
    (params(registry_mirrors=[]), {"registry-mirrors": []}, []),
    (params(settings={"registry-mirrors": ["https://a.example"]}, registry_mirrors=["https://b.example"]), None,
     ["'registry-mirrors' is given both in settings and as registry_mirrors: give it once, as registry_mirrors"]),
    (params(settings={"proxies": {}}, proxies={"http": "http://p.example"}), None,
     ["'proxies' is given both in settings and as proxies: give it once, as proxies"]),
    (params(settings={"debug": None}), None, ["settings.debug is null: to drop a key, list it in remove"]),
])
def test_requested_overlay(given, overlay, problems):
    result, found = daemon_change.requested_overlay(given)
    assert found == problems
    if overlay is not None:
        assert result == overlay


@pytest.mark.parametrize("proxies, wanted, problems", [
    (None, None, []),
    ({"http": "http://p.example:3128", "https": None, "no_proxy": ["localhost", " .corp "]},
     {"http-proxy": "http://p.example:3128", "no-proxy": "localhost,.corp"}, []),
    ({"http": None, "https": None, "no_proxy": ""}, None,
     ["proxies has no value: give http, https or no_proxy, or put 'proxies' in remove to drop the engine's proxies"]),
    ({"http": "p.example:3128", "https": None, "no_proxy": None}, {"http-proxy": "p.example:3128"},
     ['proxies entry "http-proxy" "p.example:3128" has no scheme: write it as http://p.example:3128']),
    ({"http": None, "https": None, "no_proxy": 5}, None, ["proxies.no_proxy must be a string or a list of strings, not int"]),
])
def test_proxies_option(proxies, wanted, problems):
    found = []
    assert daemon_change.proxies_option(dict(proxies=proxies), found) == wanted
    assert found == problems


class Recorder:
    """Stands in for AnsibleModule where only warnings are used."""

    def __init__(self):
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


@pytest.mark.parametrize("requested, engine_version, binary_version, method, warned", [
    ("auto", "26.1.5+dfsg1", (26, 1, 5), "daemon_json", None),
    ("auto", "20.10.24+dfsg1", (20, 10, 24), "systemd", None),
    ("auto", "20.10.24", (26, 1, 5), "systemd", "an upgrade waiting for a restart"),
    ("auto", None, (26, 1, 5), "daemon_json", "proxy_method=auto used the installed dockerd's version 26.1.5 instead"),
    ("auto", None, (20, 10, 24), "systemd", "did not answer"),
    ("systemd", "26.1.5", (26, 1, 5), "systemd", None),
    ("daemon_json", None, None, "daemon_json", None),
])
def test_pick_proxy_method(requested, engine_version, binary_version, method, warned):
    module = Recorder()
    engine = dict(engine_version=engine_version, error=None if engine_version else "socket missing")
    assert daemon_change.pick_proxy_method(module, requested, engine, binary_version) == method
    if warned:
        assert len(module.warnings) == 1 and warned in module.warnings[0]
    else:
        assert module.warnings == []


def test_pick_proxy_method_without_any_version_asks_for_a_method():
    with pytest.raises(daemon_host.Refused, match="Set proxy_method to daemon_json \\(Docker 23\\+\\) or systemd"):
        daemon_change.pick_proxy_method(Recorder(), "auto", dict(engine_version=None, error="socket missing"), None)


@pytest.mark.parametrize("engine_version, binary_version, expected", [
    ("26.1.5", (20, 10, 24), (20, 10, 24)),
    ("20.10.24", (26, 1, 5), (20, 10, 24)),
    (None, (26, 1, 5), (26, 1, 5)),
    (None, None, None),
])
def test_version_for_checks_takes_the_lowest_known(engine_version, binary_version, expected):
    assert daemon_change.version_for_checks(dict(engine_version=engine_version), binary_version) == expected


def test_unit_files_are_read_in_systemd_order(tmp_path, monkeypatch):
    etc, lib = tmp_path / "etc", tmp_path / "lib"
    for directory in (etc / "docker.service.d", lib / "docker.service.d"):
        directory.mkdir(parents=True)
    (lib / "docker.service").write_text("[Service]\nExecStart=/usr/sbin/dockerd -H fd://\n")
    (lib / "docker.service.d" / "20-vendor.conf").write_text("[Service]\nEnvironment=A=lib\n")
    (lib / "docker.service.d" / "10-shadowed.conf").write_text("[Service]\nEnvironment=B=lib\n")
    (etc / "docker.service.d" / "10-shadowed.conf").write_text("[Service]\nEnvironment=B=etc\n")
    (etc / "docker.service.d" / "30-local.conf").write_text("[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/c.sock\n")
    monkeypatch.setattr(daemon_host, "UNIT_DIRECTORIES", (str(etc), str(lib)))
    text = daemon_host.unit_text_from_files("docker.service")
    unit = systemd_unit.parse_unit(text)
    assert unit.files == [str(lib / "docker.service"), str(etc / "docker.service.d" / "10-shadowed.conf"),
                          str(lib / "docker.service.d" / "20-vendor.conf"), str(etc / "docker.service.d" / "30-local.conf")]
    assert unit.environment == {"A": "lib", "B": "etc"}
    assert unit.exec_start == "/usr/sbin/dockerd --containerd=/c.sock" and unit.exec_start_file.endswith("30-local.conf")
    # a unit file in the higher-priority directory replaces the packaged one
    (etc / "docker.service").write_text("[Service]\nExecStart=/opt/dockerd\n")
    assert systemd_unit.parse_unit(daemon_host.unit_text_from_files("docker.service")).files[0] == str(etc / "docker.service")
    assert daemon_host.unit_text_from_files("absent.service") == ""


def run_main(capsys, args, check_mode=False):
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exited:
            daemon_config.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exited.value.code
    return result


@pytest.fixture()
def isolated(tmp_path):
    """Paths under tmp_path, no engine, no dockerd, no unit: only the module's own logic runs."""
    return dict(path=str(tmp_path / "docker" / "daemon.json"), dropin=str(tmp_path / "docker.service.d" / "http-proxy.conf"),
                docker_host=NO_ENGINE, dockerd_path=str(tmp_path / "no-dockerd"), unit="fleet-images-absent.service",
                applied_record=str(tmp_path / "state" / "daemon-applied.json"))


def test_main_predicts_in_check_mode_and_writes_nothing(capsys, isolated):
    result = run_main(capsys, dict(isolated, registry_mirrors=["https://m.example"], proxies={"http": "http://p.example:3128"},
                                   proxy_method="systemd"), check_mode=True)
    assert result["changed"] and result["rc"] == 0
    assert result["needs"] == "restart" and result["needs_keys"] == {"reload": ["registry-mirrors"], "restart": ["proxies"]}
    assert result["validation"]["dockerd"] == "not_found"
    assert result["engine"]["source"] == "unknown" and "socket does not exist" in result["engine"]["error"]
    assert [entry["after_header"] for entry in result["diff"]] == [isolated["path"], isolated["dropin"]]
    assert not os.path.exists(os.path.dirname(isolated["path"])) and not os.path.exists(isolated["dropin"])


def test_main_writes_a_new_file_with_its_directory(capsys, isolated):
    result = run_main(capsys, dict(isolated, settings={"live-restore": True}))
    assert result["changed"] and result["created"] and result["needs"] == "reload"
    assert json.load(open(isolated["path"])) == {"live-restore": True}
    assert oct(os.stat(isolated["path"]).st_mode & 0o777) == "0o644"
    assert oct(os.stat(os.path.dirname(isolated["path"])).st_mode & 0o777) == "0o755"


def test_main_auto_proxies_need_a_version(capsys, isolated):
    result = run_main(capsys, dict(isolated, proxies={"http": "http://p.example:3128"}))
    assert result["failed"] and result["rc"] == 1
    assert "proxy_method=auto cannot tell the engine's version" in result["msg"]
    assert not os.path.exists(isolated["dropin"])


def test_main_lists_every_contradiction(capsys, isolated):
    result = run_main(capsys, dict(isolated, settings={"debug": True, "mtu": None}, remove=["debug"], registry_mirrors=["m.example"]))
    assert result["failed"]
    assert result["problems"] == ["settings.mtu is null: to drop a key, list it in remove", "'debug' is both set and removed: give it in one place only"]
    assert result["msg"].startswith(isolated["path"] + ": the change was refused and nothing was written:")


# --- written but not applied: the record of what the engine runs ------------------------------

def test_the_first_write_records_the_files_as_they_were(capsys, isolated):
    os.makedirs(os.path.dirname(isolated["path"]))
    with open(isolated["path"], "w") as handle:
        handle.write('{"debug": false}')
    assert run_main(capsys, dict(isolated, registry_mirrors=["https://m.example"]))["changed"]
    record = json.load(open(isolated["applied_record"]))
    assert record["daemon_json"] == '{"debug": false}' and record["dropin"] is None
    assert oct(os.stat(isolated["applied_record"]).st_mode & 0o777) == "0o600"
    assert oct(os.stat(os.path.dirname(isolated["applied_record"])).st_mode & 0o777) == "0o700"


def test_a_written_but_unapplied_change_is_reported_until_recorded_as_applied(capsys, isolated):
    params = dict(isolated, registry_mirrors=["https://m.example"])
    written = run_main(capsys, params)
    assert written["changed"] and written["needs"] == "reload" and not written["pending"]
    # the run that wrote it failed before the engine applied it: the rerun still asks for the reload
    again = run_main(capsys, params)
    assert not again["changed"] and again["pending"] and again["pending_keys"] == ["registry-mirrors"]
    assert again["needs"] == "reload" and again["needs_keys"] == {"reload": ["registry-mirrors"], "restart": []}
    # a hand edit the engine never saw counts too, with what it needs
    with open(isolated["path"], "w") as handle:
        handle.write('{"registry-mirrors": ["https://m.example"], "log-level": "warn"}')
    edited = run_main(capsys, params)
    assert edited["pending_keys"] == ["log-level", "registry-mirrors"] and edited["needs"] == "restart"
    # the role records the files after its reload or restart succeeded: then nothing is pending
    assert run_main(capsys, dict(isolated, state="applied"))["changed"]
    assert not run_main(capsys, dict(isolated, state="applied"))["changed"]
    settled = run_main(capsys, params)
    assert not settled["changed"] and not settled["pending"] and settled["needs"] == "none"


def test_daemon_json_is_written_last_so_a_failure_before_leaves_it_alone(capsys, isolated, tmp_path):
    certs_d = tmp_path / "certs.d"
    certs_d.write_text("a file where the directory should be")
    pem = pki_ca_pem()
    result = run_main(capsys, dict(isolated, registry_mirrors=["https://m.example"], certs_d=str(certs_d),
                                   registry_ca_certs={"r.example:5000": pem}))
    assert result["failed"] and "Cannot write %s/r.example:5000/ca.crt" % certs_d in result["msg"]
    assert not os.path.exists(isolated["path"]), "daemon.json was written although a later step failed"


def test_rollback_puts_back_what_the_engine_last_ran_not_the_previous_file(capsys, isolated):
    os.makedirs(os.path.dirname(isolated["path"]))
    good = '{"debug": false}'
    with open(isolated["path"], "w") as handle:
        handle.write(good)
    assert run_main(capsys, dict(isolated, state="applied"))["changed"]
    # a hand edit dockerd would refuse at start, then a run for an unrelated change
    with open(isolated["path"], "w") as handle:
        handle.write('{"debug": false, "storage-driver": "no-such-driver"}')
    changed = run_main(capsys, dict(isolated, registry_mirrors=["https://m.example"], backup=True))
    assert changed["pending_keys"] == ["storage-driver"] and changed["needs"] == "restart"
    assert "no-such-driver" in open(changed["backup_file"]).read()
    rolled = run_main(capsys, dict(isolated, state="rolled_back"))
    assert rolled["changed"] and rolled["restored"] == [isolated["path"]]
    assert open(isolated["path"]).read() == good
    assert not run_main(capsys, dict(isolated, state="rolled_back"))["changed"]


def test_rollback_without_a_record_says_what_to_do(capsys, isolated):
    result = run_main(capsys, dict(isolated, state="rolled_back"))
    assert result["failed"] and "nothing to roll back to" in result["msg"] and "Traceback" not in json.dumps(result)


# --- temporary files and backups ---------------------------------------------------------

def test_stale_temporary_files_are_removed_by_the_next_run(capsys, isolated):
    directory = os.path.dirname(isolated["path"])
    os.makedirs(directory)
    stale = [os.path.join(directory, ".daemon.json.%s.tmp" % name) for name in ("abc123", "x_y")]
    for name in stale:
        with open(name, "w") as handle:
            handle.write("{half")
    other = os.path.join(directory, ".other.json.abc.tmp")
    open(other, "w").close()
    predicted = run_main(capsys, dict(isolated, settings={"debug": True}), check_mode=True)
    assert predicted["removed_temp_files"] == stale and all(os.path.exists(name) for name in stale)
    result = run_main(capsys, dict(isolated, settings={"debug": True}))
    assert result["removed_temp_files"] == stale
    assert sorted(os.listdir(directory)) == [".other.json.abc.tmp", "daemon.json"]


def test_backups_are_bounded(capsys, isolated):
    directory = os.path.dirname(isolated["path"])
    os.makedirs(directory)
    with open(isolated["path"], "w") as handle:
        handle.write("{}")
    old = [os.path.join(directory, "daemon.json.%d.2020-01-0%d@10:00:00~" % (100 + day, day)) for day in range(1, 6)]
    for name in old:
        open(name, "w").close()
    result = run_main(capsys, dict(isolated, settings={"debug": True}, backup=True, backup_keep=3))
    assert result["removed_backups"] == old[:3]
    assert sorted(name for name in os.listdir(directory) if name.endswith("~")) == sorted(
        [os.path.basename(name) for name in old[3:]] + [os.path.basename(result["backup_file"])])
    assert run_main(capsys, dict(isolated, settings={"debug": True}, backup=True, backup_keep=0))["failed"]


# --- secrets -------------------------------------------------------------------------------

PASSWORDS = ["p@ss", "s:e/c@r%40et", "p%40ss", "a/b:c"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_password_in_an_invalid_file_is_never_shown(capsys, isolated, password):
    os.makedirs(os.path.dirname(isolated["path"]))
    text = '{\n  "proxies": {"http-proxy": "http://user:%s@proxy.example:3128"}\n  "debug": true\n}\n' % password
    with open(isolated["path"], "w") as handle:
        handle.write(text)
    refused = run_main(capsys, dict(isolated, registry_mirrors=["https://m.example"]))
    assert refused["failed"] and "line 3, column 3" in refused["msg"]
    replaced = run_main(capsys, dict(isolated, registry_mirrors=["https://m.example"], replace_invalid=True))
    assert replaced["changed"] and "line 3, column 3" in replaced["replaced_invalid"]
    for result in (refused, replaced):
        shown = json.dumps(result)
        assert password not in shown and password.replace("%40", "@") not in shown and "user:" not in shown, shown


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_password_in_a_value_of_the_wrong_type_is_never_shown(capsys, isolated, password):
    os.makedirs(os.path.dirname(isolated["path"]))
    with open(isolated["path"], "w") as handle:
        json.dump({"proxies": "http://user:%s@proxy.example:3128" % password, "labels": ["http://u:%s@x" % password]}, handle)
    result = run_main(capsys, dict(isolated, registry_mirrors=["https://m.example"]))
    assert result["failed"] and "'proxies' must be a JSON object" in result["msg"]
    assert password not in json.dumps(result), result


def test_deeply_nested_daemon_json_is_a_clear_error(capsys, isolated):
    os.makedirs(os.path.dirname(isolated["path"]))
    with open(isolated["path"], "w") as handle:
        handle.write('{"a": ' + "[" * 100000 + "]" * 100000 + "}")
    result = run_main(capsys, dict(isolated, registry_mirrors=["https://m.example"]))
    assert result["failed"] and "nests objects or lists" in result["msg"] and "Traceback" not in json.dumps(result)


# --- a key dockerd also gets as a flag -----------------------------------------------------

def test_a_conflict_already_in_the_file_is_refused_for_an_unrelated_change(capsys, isolated, tmp_path, monkeypatch):
    units = tmp_path / "units"
    units.mkdir()
    (units / "docker.service").write_text("[Service]\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock\n")
    monkeypatch.setattr(daemon_host, "UNIT_DIRECTORIES", (str(units),))
    os.makedirs(os.path.dirname(isolated["path"]))
    before = '{"hosts": ["unix:///var/run/docker.sock"]}'
    with open(isolated["path"], "w") as handle:
        handle.write(before)
    result = run_main(capsys, dict(isolated, unit="docker.service", registry_mirrors=["https://m.example"]))
    assert result["failed"], result
    assert "daemon.json key 'hosts' conflicts with the flag '-H fd://' that %s passes to dockerd" % (units / "docker.service") in result["msg"]
    assert "on %s, " % daemon_host.HOSTNAME in result["msg"] and "remove: ['hosts']" in result["msg"]
    assert open(isolated["path"]).read() == before and not os.path.exists(isolated["applied_record"])


def pki_ca_pem():
    import trustme
    return trustme.CA().cert_pem.bytes().decode()


def test_a_file_the_engine_refused_is_not_applied_again(capsys, isolated):
    os.makedirs(os.path.dirname(isolated["path"]))
    with open(isolated["path"], "w") as handle:
        handle.write('{"debug": false}')
    run_main(capsys, dict(isolated, state="applied"))
    bad = dict(isolated, settings={"storage-driver": "no-such-driver"})
    assert run_main(capsys, bad)["needs"] == "restart"
    # the role's restart failed: it rolls back, and the file it replaced is remembered as refused
    assert run_main(capsys, dict(isolated, state="rolled_back"))["changed"]
    again = run_main(capsys, bad)
    assert again["failed"] and "dockerd refused exactly this %s at an earlier reload or restart" % isolated["path"] in again["msg"]
    assert "retry_refused=true" in again["msg"] and open(isolated["path"]).read() == '{"debug": false}'
    # another change is not held back, and retry_refused tries the refused file once more
    assert run_main(capsys, dict(isolated, settings={"storage-driver": "overlay2"}), check_mode=True)["changed"]
    assert run_main(capsys, dict(bad, retry_refused=True))["changed"]
    # once the engine ran it (recorded as applied), it is no longer refused
    run_main(capsys, dict(isolated, state="applied"))
    assert json.load(open(isolated["applied_record"]))["refused"] == []
