"""daemon_config against real files, this machine's Docker Engine and its dockerd binary.

Every test works on a daemon.json and a drop-in under pytest's tmp_path: the engine of this
machine is only asked for its version and never reloaded, and /etc/docker is never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest

from ansible_collections.fleet.images.plugins.module_utils import pki
from module_runner import run_module

NO_UNIT = "fleet-images-test-absent.service"


def dockerd_binary():
    return shutil.which("dockerd") or next((p for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd") if os.path.exists(p)), None)


def dockerd_has_validate():
    """Probed the way the module probes, so the expectation follows the binary installed here."""
    binary = dockerd_binary()
    if binary is None:
        return None
    done = subprocess.run([binary, "--help"], capture_output=True, text=True, check=False)
    return "--validate" in done.stdout + done.stderr


def digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def warnings_of(result):
    """Warning texts, whatever shape this ansible-core gives them."""
    texts = []
    for warning in result.get("warnings", []):
        if isinstance(warning, dict):
            texts.append(warning.get("event", {}).get("msg") or warning.get("msg") or json.dumps(warning))
        else:
            texts.append(str(warning))
    return texts


@pytest.fixture()
def files(tmp_path):
    """Paths for daemon.json and the proxy drop-in, in a directory of their own."""
    etc = tmp_path / "etc-docker"
    etc.mkdir()
    return dict(path=str(etc / "daemon.json"), dropin=str(tmp_path / "docker.service.d" / "http-proxy.conf"), unit=NO_UNIT,
                applied_record=str(tmp_path / "state" / "daemon-applied.json"))


def write(path, text, mode=0o644):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


# --- creating, merging, idempotence ------------------------------------------------------

def test_check_then_create_then_nothing_to_do(files):
    params = dict(files, registry_mirrors=["https://mirror.example:5000"])
    predicted = run_module("daemon_config", params, check_mode=True, diff=True)
    assert predicted["changed"] and predicted["created"] and predicted["needs"] == "reload"
    assert not os.path.exists(files["path"]), "check mode created the file"
    assert os.listdir(os.path.dirname(files["path"])) == [], "check mode left a temporary file next to daemon.json"

    made = run_module("daemon_config", params, diff=True)
    assert made["changed"] and made["created"]
    assert {key: made[key] for key in ("needs", "needs_keys", "changed_keys", "config")} == \
        {key: predicted[key] for key in ("needs", "needs_keys", "changed_keys", "config")}
    assert made["diff"][0]["before"] == "" and json.loads(made["diff"][0]["after"]) == {"registry-mirrors": ["https://mirror.example:5000"]}
    assert json.load(open(files["path"])) == {"registry-mirrors": ["https://mirror.example:5000"]}
    assert oct(os.stat(files["path"]).st_mode & 0o7777) == "0o644"
    assert sorted(os.listdir(os.path.dirname(files["path"]))) == ["daemon.json"], "a temporary file was left behind"

    # until the engine applied it (the daemon role records that after its reload), the file is pending
    pending = run_module("daemon_config", params)
    assert not pending["changed"] and pending["pending"] and pending["needs"] == "reload"
    assert run_module("daemon_config", dict(files, state="applied"))["changed"]
    for check_mode in (True, False):
        again = run_module("daemon_config", params, check_mode=check_mode, diff=True)
        assert not again["changed"] and again["needs"] == "none" and again["diff"] == []
        # Nothing to write: neither dockerd nor the engine is asked (a rerun's main cost).
        assert again["engine"]["engine_version"] is None and again["engine"]["error"].startswith("not asked:")
        assert again["validation"]["dockerd"] == "not_needed"
    assert made["engine"]["source"] in ("engine", "dockerd binary") and not made["engine"]["error"]


def test_foreign_keys_mode_and_owner_are_kept(files):
    write(files["path"], '{"log-opts": {"max-size": "10m", "max-file": "3"}, "data-root": "/var/lib/docker", "runtimes": {"x": {"path": "/bin/x"}}}', 0o640)
    os.chown(files["path"], 4321, 4322)
    result = run_module("daemon_config", dict(files, registry_mirrors=["https://m.example"], settings={"log-opts": {"max-file": "5"}}))
    assert result["changed"] and result["needs"] == "restart"
    assert result["needs_keys"] == {"reload": ["registry-mirrors"], "restart": ["log-opts"]}
    assert json.load(open(files["path"])) == {
        "log-opts": {"max-size": "10m", "max-file": "5"}, "data-root": "/var/lib/docker", "runtimes": {"x": {"path": "/bin/x"}},
        "registry-mirrors": ["https://m.example"]}
    info = os.stat(files["path"])
    assert (oct(info.st_mode & 0o7777), info.st_uid, info.st_gid) == ("0o640", 4321, 4322)


def test_a_symlinked_daemon_json_stays_a_symlink(files, tmp_path):
    target = tmp_path / "managed-elsewhere.json"
    target.write_text('{"debug": false}')
    os.symlink(str(target), files["path"])
    result = run_module("daemon_config", dict(files, registry_mirrors=["https://m.example"]))
    assert result["changed"]
    assert os.path.islink(files["path"]) and os.readlink(files["path"]) == str(target)
    assert json.loads(target.read_text()) == {"debug": False, "registry-mirrors": ["https://m.example"]}


def test_formatting_alone_is_no_change(files):
    write(files["path"], '{"debug":false,\n\n   "registry-mirrors":["https://m.example"]}')
    before = digest(files["path"])
    result = run_module("daemon_config", dict(files, registry_mirrors=["https://m.example"], settings={"debug": False}))
    assert not result["changed"]
    assert digest(files["path"]) == before


@pytest.mark.parametrize("mode, expected", [
    ("replace", ["https://b.example"]),
    ("append_unique", ["https://a.example/", "https://b.example"]),
])
def test_list_merge(files, mode, expected):
    write(files["path"], '{"registry-mirrors": ["https://a.example/"]}')
    result = run_module("daemon_config", dict(files, registry_mirrors=["https://b.example", "https://A.example"] if mode == "append_unique"
                                              else ["https://b.example"], list_merge=mode))
    assert json.load(open(files["path"]))["registry-mirrors"] == expected
    assert result["changed"]


def test_remove_keys_and_dotted_paths(files):
    write(files["path"], '{"debug": true, "log-opts": {"max-size": "10m", "max-file": "3"}, "mtu": 1400}')
    result = run_module("daemon_config", dict(files, remove=["debug", "log-opts.max-file", "not-there"]))
    assert result["changed"] and result["changed_keys"] == ["debug", "log-opts"]
    assert result["needs"] == "restart" and result["needs_keys"] == {"reload": ["debug"], "restart": ["log-opts"]}
    assert json.load(open(files["path"])) == {"log-opts": {"max-size": "10m"}, "mtu": 1400}
    assert not run_module("daemon_config", dict(files, remove=["debug", "log-opts.max-file"]))["changed"]


def test_set_and_remove_inside_one_object(files):
    write(files["path"], '{"log-opts": {"max-size": "10m", "max-file": "3"}}')
    result = run_module("daemon_config", dict(files, settings={"log-opts": {"max-size": "20m"}}, remove=["log-opts.max-file"]))
    assert result["changed"], result.get("msg")
    assert json.load(open(files["path"])) == {"log-opts": {"max-size": "20m"}}
    refused = run_module("daemon_config", dict(files, settings={"log-opts": {"max-size": "30m"}}, remove=["log-opts"]))
    assert refused["failed"] and "'log-opts' is both set and removed" in refused["msg"]


def test_backup_keeps_the_previous_file(files):
    write(files["path"], '{"debug": true}')
    result = run_module("daemon_config", dict(files, settings={"debug": False}, backup=True))
    assert result["backup_file"].startswith(files["path"] + ".")
    assert json.load(open(result["backup_file"])) == {"debug": True}
    assert json.load(open(files["path"])) == {"debug": False}


# --- refusing bad input: nothing written -------------------------------------------------

@pytest.mark.parametrize("content, fragment", [
    ('{\n  "debug": true\n  "mtu": 1400\n}\n', r"is not valid JSON: Expecting ',' delimiter at line 3, column 3"),
    ("", r"is empty: dockerd refuses an empty daemon.json"),
    ("[1, 2]", r"must hold a JSON object"),
])
def test_an_invalid_existing_file_is_never_overwritten(files, content, fragment):
    write(files["path"], content)
    before = digest(files["path"])
    result = run_module("daemon_config", dict(files, registry_mirrors=["https://m.example"], backup=True))
    assert result["failed"]
    assert re.search(fragment, result["msg"]), result["msg"]
    assert "set replace_invalid=true" in result["msg"]
    assert digest(files["path"]) == before
    assert os.listdir(os.path.dirname(files["path"])) == ["daemon.json"]


def test_replace_invalid_backs_up_first(files):
    write(files["path"], '{"debug": tru')
    result = run_module("daemon_config", dict(files, registry_mirrors=["https://m.example"], replace_invalid=True), diff=True)
    assert result["changed"] and "is not valid JSON" in result["replaced_invalid"]
    assert open(result["backup_file"]).read() == '{"debug": tru'
    assert json.load(open(files["path"])) == {"registry-mirrors": ["https://m.example"]}
    # not quoted: an invalid file may hold a proxy password the masking cannot find
    assert result["diff"][0]["before"].startswith("(not valid JSON, not shown: ")


@pytest.mark.parametrize("params, fragments", [
    (dict(registry_mirrors=["mirror.example:5000"]),
     ["'registry-mirrors' item 1 \"mirror.example:5000\" has no scheme: write it as https://mirror.example:5000"]),
    (dict(registry_mirrors=["https://mirror.example/v2/"]), ["has a path, query or fragment"]),
    (dict(insecure_registries=["http://registry.example:5000"]), ["write an insecure registry as host:port"]),
    (dict(settings={"live-restore": "true"}), ["'live-restore' must be a JSON boolean (true or false without quotes)"]),
    (dict(settings={"registry-mirror": ["https://m.example"]}), ["'registry-mirror' is the name of dockerd's command-line flag"]),
    (dict(settings={"live-restor": True}, validate=False), ["'live-restor' is not a daemon.json key dockerd knows (did you mean 'live-restore'?)"]),
    (dict(settings={"log-opts": {"max-file": 3}}), ['\'log-opts\' entry "max-file" must be a JSON string']),
    (dict(settings={"registry-mirrors": ["https://a.example"]}, registry_mirrors=["https://b.example"]),
     ["'registry-mirrors' is given both in settings and as registry_mirrors"]),
    (dict(settings={"debug": True}, remove=["debug"]), ["'debug' is both set and removed"]),
    (dict(settings={"debug": None}), ["settings.debug is null: to drop a key, list it in remove"]),
    (dict(proxies={"http": "proxy.example:3128"}, proxy_method="systemd"), ["has no scheme: write it as http://proxy.example:3128"]),
    (dict(proxies={"no_proxy": ""}), ["proxies has no value"]),
    # every problem is listed at once
    (dict(registry_mirrors=["m.example"], settings={"debug": "yes"}), ["has no scheme", "'debug' must be a JSON boolean"]),
])
def test_bad_input_is_refused_and_names_the_problem(files, params, fragments):
    write(files["path"], '{"data-root": "/var/lib/docker"}')
    before = digest(files["path"])
    result = run_module("daemon_config", dict(files, **params))
    assert result["failed"], result
    for fragment in fragments:
        assert fragment in result["msg"], result["msg"]
    assert "nothing was written" in result["msg"]
    assert digest(files["path"]) == before
    assert not os.path.exists(files["dropin"])


def test_problems_in_keys_this_run_leaves_alone_are_refused_too(files):
    # dockerd reads the whole file at its next start: a file it refuses is never written
    write(files["path"], '{"debug": "true"}')
    before = digest(files["path"])
    result = run_module("daemon_config", dict(files, registry_mirrors=["https://m.example"]))
    assert result["failed"] and "'debug' must be a JSON boolean" in result["msg"]
    assert "already in the file before this change" in result["msg"] and "nothing was written" in result["msg"]
    assert digest(files["path"]) == before


# --- proxies -------------------------------------------------------------------------------

def test_proxies_through_a_drop_in_then_removed(files):
    proxies = {"http": "http://user:hunter22@proxy.example:3128", "https": "http://proxy.example:3128", "no_proxy": ["localhost", ".corp"]}
    made = run_module("daemon_config", dict(files, proxies=proxies, proxy_method="systemd"), diff=True)
    assert made["changed"] and made["proxy_method"] == "systemd"
    assert made["needs"] == "restart" and made["needs_keys"]["restart"] == ["proxies"]
    assert made["dropin"]["state"] == "present" and made["dropin"]["created"]
    text = open(files["dropin"]).read()
    assert 'Environment="HTTP_PROXY=http://user:hunter22@proxy.example:3128"' in text
    assert 'Environment="NO_PROXY=localhost,.corp"' in text
    assert "hunter22" not in json.dumps(made), "the proxy password leaked into the module's output"
    assert not os.path.exists(files["path"]), "daemon.json was created although nothing goes into it"

    assert not run_module("daemon_config", dict(files, proxies=proxies, proxy_method="systemd"))["changed"]

    removed = run_module("daemon_config", dict(files, remove=["proxies"]))
    assert removed["changed"] and removed["dropin"]["state"] == "absent" and removed["needs"] == "restart"
    assert not os.path.exists(files["dropin"])


def test_proxies_in_daemon_json_replace_a_drop_in_this_module_wrote(files):
    run_module("daemon_config", dict(files, proxies={"http": "http://proxy.example:3128"}, proxy_method="systemd"))
    # A daemon_json method on an engine that cannot read it is refused...
    engine = run_module("daemon_config", dict(files, settings={}))["engine"]
    result = run_module("daemon_config", dict(files, proxies={"http": "http://proxy.example:3128"}, proxy_method="daemon_json"))
    if engine["version"] and tuple(int(part) for part in engine["version"].split(".")[:2]) < (23, 0):
        assert result["failed"] and "'proxies' needs Docker Engine 23.0 or later; this engine is %s" % engine["version"] in result["msg"]
        assert os.path.exists(files["dropin"])
    else:
        assert result["changed"] and result["dropin"]["state"] == "absent"
        assert json.load(open(files["path"]))["proxies"] == {"http-proxy": "http://proxy.example:3128"}


def test_auto_follows_the_engine_version(files):
    result = run_module("daemon_config", dict(files, proxies={"http": "http://proxy.example:3128"}))
    version = tuple(int(part) for part in result["engine"]["version"].split(".")[:2])
    assert result["engine"]["source"] == "engine"
    assert result["proxy_method"] == ("daemon_json" if version >= (23, 0) else "systemd")


def test_auto_falls_back_to_the_installed_dockerd_when_the_engine_does_not_answer(files, tmp_path):
    if dockerd_binary() is None:
        pytest.skip("no dockerd binary on this machine")
    result = run_module("daemon_config", dict(files, proxies={"http": "http://proxy.example:3128"},
                                              docker_host="unix://%s/no-engine.sock" % tmp_path))
    assert not result["failed"], result["msg"]
    assert result["engine"]["source"] == "dockerd binary" and result["engine"]["engine_version"] is None
    assert "socket does not exist" in result["engine"]["error"]
    assert any("did not answer" in text and "proxy_method=auto used the installed dockerd's version" in text for text in warnings_of(result))


# --- dockerd --validate, probed ------------------------------------------------------------

def test_validation_follows_what_the_installed_dockerd_can_do(files):
    has_validate = dockerd_has_validate()
    if has_validate is None:
        pytest.skip("no dockerd binary on this machine")
    result = run_module("daemon_config", dict(files, registry_mirrors=["https://m.example"]))
    assert result["validation"]["binary"]
    if has_validate:
        assert result["validation"]["dockerd"] == "passed"
    else:
        assert result["validation"]["dockerd"] == "unavailable"
        assert "has no --validate" in result["validation"]["message"]
    skipped = run_module("daemon_config", dict(files, registry_mirrors=["https://n.example"], validate=False))
    assert skipped["validation"]["dockerd"] == "skipped"
    run_module("daemon_config", dict(files, state="applied"))
    assert run_module("daemon_config", dict(files, registry_mirrors=["https://n.example"]))["validation"]["dockerd"] == "not_needed"


# --- the engine's unit ---------------------------------------------------------------------

def installed_unit():
    for directory in ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"):
        if os.path.isfile(os.path.join(directory, "docker.service")):
            return os.path.join(directory, "docker.service")
    return None


def test_hosts_conflicting_with_the_units_dash_h_is_refused(files):
    unit = installed_unit()
    if unit is None or "-H fd://" not in open(unit).read():
        pytest.skip("no docker.service passing -H fd:// on this machine")
    result = run_module("daemon_config", dict(files, unit="docker.service", settings={"hosts": ["unix:///var/run/docker.sock"]}))
    assert result["failed"]
    assert "daemon.json key 'hosts' conflicts with the flag '-H fd://' that" in result["msg"]
    assert not os.path.exists(files["path"])


def test_restart_warning_when_containers_run_without_live_restore(files):
    result = run_module("daemon_config", dict(files, settings={"log-opts": {"max-size": "1m"}}))
    engine = result["engine"]
    expected = bool(engine["running_containers"]) and not engine["live_restore"]
    warned = [text for text in warnings_of(result) if "needs a Docker restart" in text]
    assert bool(warned) == expected
    if warned:
        assert "a plain restart stops the %d running container(s)" % engine["running_containers"] in warned[0]
    # turning live-restore on is applied by a reload before the restart: the containers keep running, no warning
    turned_on = run_module("daemon_config", dict(files, settings={"log-opts": {"max-size": "2m"}, "live-restore": True}), check_mode=True)
    assert turned_on["needs_keys"]["reload"] == ["live-restore"] and not [text for text in warnings_of(turned_on) if "needs a Docker restart" in text]
    run_module("daemon_config", dict(files, state="applied"))
    reload_only = run_module("daemon_config", dict(files, registry_mirrors=["https://m.example"]))
    assert not [text for text in warnings_of(reload_only) if "needs a Docker restart" in text]


def a_ca_certificate():
    return pki.plan_pki({}, "test CA", "registry1", ["DNS:registry1"], 30, 30, 1)["files"]["ca.crt"]


def test_registry_ca_certs_are_written_with_daemon_json_and_need_no_reload(files, tmp_path):
    certs_d = tmp_path / "certs.d"
    ca = a_ca_certificate()
    params = dict(files, registry_mirrors=["https://registry1:5000"], registry_ca_certs={"registry1:5000": ca}, certs_d=str(certs_d))
    predicted = run_module("daemon_config", params, check_mode=True)
    assert predicted["changed"] and predicted["registry_ca_certs"] == ["registry1:5000"] and not certs_d.exists()
    made = run_module("daemon_config", params)
    assert made["changed"] and made["registry_ca_certs"] == ["registry1:5000"] and made["needs"] == "reload"
    assert (certs_d / "registry1:5000" / "ca.crt").read_text() == ca
    assert oct(os.stat(certs_d / "registry1:5000" / "ca.crt").st_mode & 0o7777) == "0o644"
    run_module("daemon_config", dict(files, state="applied"))
    again = run_module("daemon_config", params)
    assert not again["changed"] and again["registry_ca_certs"] == [] and again["needs"] == "none"
    # Only the CA changes: written, and the engine needs nothing.
    (certs_d / "registry1:5000" / "ca.crt").write_text("stale\n")
    fixed = run_module("daemon_config", params)
    assert fixed["changed"] and fixed["registry_ca_certs"] == ["registry1:5000"] and fixed["needs"] == "none"
    assert (certs_d / "registry1:5000" / "ca.crt").read_text() == ca


@pytest.mark.parametrize("registry_ca_certs, fragment", [
    ({"https://registry1:5000": "x"}, "registry 'https://registry1:5000' is not HOST:PORT"),
    ({"registry1:5000": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, "the CA for registry1:5000 is not PEM certificate text"),
])
def test_a_bad_registry_ca_is_refused_before_anything_is_written(files, tmp_path, registry_ca_certs, fragment):
    params = dict(files, registry_mirrors=["https://registry1:5000"], registry_ca_certs=registry_ca_certs, certs_d=str(tmp_path / "certs.d"))
    result = run_module("daemon_config", params)
    assert result["failed"] and fragment in result["msg"]
    assert not os.path.exists(files["path"]) and not (tmp_path / "certs.d").exists()


# --- a full disk ---------------------------------------------------------------------------

@pytest.fixture()
def full_disk(tmp_path):
    """A tiny tmpfs as /etc/docker holding a daemon.json, filled up to the last byte."""
    mount_point = tmp_path / "full-etc-docker"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "fi-dmn-full", str(mount_point)], check=True)
    try:
        write(str(mount_point / "daemon.json"), '{"debug": false}\n')
        filler = os.open(str(mount_point / "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(filler, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(filler)
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("backup", [False, True])
def test_a_full_disk_leaves_daemon_json_intact_and_no_temporary_file(files, full_disk, backup):
    path = str(full_disk / "daemon.json")
    before = digest(path)
    result = run_module("daemon_config", dict(files, path=path, registry_mirrors=["https://mirror.example:5000"], backup=backup))
    assert result["failed"]
    assert result["msg"].startswith("Cannot write %s on " % path) and "no space left on device" in result["msg"], result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert digest(path) == before
    assert sorted(os.listdir(full_disk)) == ["daemon.json", "filler"], "a temporary file or a partial backup was left behind"
