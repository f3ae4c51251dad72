"""registry_deploy against this machine's real engine and the lab's registry:2 image, on loopback ports.

Every container is named fi-reg-<random> and removed when its test ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
import stat
import threading
import uuid
import warnings

import docker
import pytest
import requests
import trustme

from module_runner import COLLECTIONS_ROOT, run_task
from ports import free_port
from test_docker_client import splice_to_engine, tls_engine  # noqa: F401  (a fixture) pylint: disable=unused-import

REGISTRY_IMAGE = "registry:2"
SOCKET = "unix:///var/run/docker.sock"


@pytest.fixture
def run_module(module_runner):
    return module_runner


@pytest.fixture
def names(engine):
    """Hands out unique container names and removes those containers afterwards."""
    handed = []

    def make():
        handed.append("fi-reg-%s" % uuid.uuid4().hex[:8])
        return handed[-1]

    yield make
    for name in handed:
        for suffix in ("", "-candidate", "-previous"):
            try:
                engine.containers.get(name + suffix).remove(force=True, v=True)
            except docker.errors.NotFound:
                pass


class Pki:
    """A CA and server certificates for 127.0.0.1, written where the module reads them."""

    def __init__(self, directory):
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_path = str(directory / "ca.crt")
        self.ca.cert_pem.write_to_path(self.ca_path)
        self.cert_path = str(directory / "server.crt")
        self.key_path = str(directory / "server.key")
        self.issue()

    def issue(self):
        """A new certificate and key under the same paths, as a renewal does."""
        server = self.ca.issue_cert("127.0.0.1", "localhost")
        server.cert_chain_pems[0].write_to_path(self.cert_path)
        server.private_key_pem.write_to_path(self.key_path)
        os.chmod(self.key_path, 0o600)
        return server

    def foreign_key(self):
        path = str(self.directory / "other.key")
        self.ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(path)
        return path


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path)


@pytest.fixture
def make_params(tmp_path, pki, names):
    def make(**overrides):
        name = overrides.pop("name", None) or names()
        params = dict(
            docker_host=SOCKET,
            name=name,
            image=REGISTRY_IMAGE,
            port=free_port(),
            bind_address="127.0.0.1",
            data_dir=str(tmp_path / ("data-" + name)),
            htpasswd_path=str(tmp_path / ("auth-" + name) / "htpasswd"),
            config_path=str(tmp_path / ("auth-" + name) / "config.yml"),
            tls_cert=pki.cert_path,
            tls_key=pki.key_path,
            tls_ca=pki.ca_path,
            users=[{"name": "ci", "password": "first-password"}],
            wait_timeout=30,
        )
        params.update(overrides)
        return params

    return make


def v2_status(params, auth=None, ca=None):
    url = "https://127.0.0.1:%d/v2/" % params["port"]
    return requests.get(url, auth=auth, verify=ca or params["tls_ca"], timeout=10).status_code


def push_blob(params, auth, data):
    """Upload one blob through the registry API; returns its digest."""
    base = "https://127.0.0.1:%d" % params["port"]
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(base + "/v2/itest/blob/blobs/uploads/", auth=auth, verify=params["tls_ca"], timeout=10)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    location = location if location.startswith("http") else base + location
    done = requests.put(location, params={"digest": digest}, data=data, auth=auth, verify=params["tls_ca"],
                        headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert done.status_code == 201, done.text
    return digest


def blob_present(params, auth, digest):
    url = "https://127.0.0.1:%d/v2/itest/blob/blobs/%s" % (params["port"], digest)
    return requests.head(url, auth=auth, verify=params["tls_ca"], timeout=10).status_code == 200


def assert_still_serving(engine, params, container_id):
    container = engine.containers.get(params["name"])
    assert container.id == container_id
    assert container.status == "running"
    assert v2_status(params) == 401


def test_first_run_creates_and_the_second_changes_nothing(engine, make_params, run_module):
    params = make_params()

    predicted = run_module("registry_deploy", params, check_mode=True, diff=True)
    assert predicted["changed"] and predicted["action"] == "create", predicted
    assert predicted["changed_inputs"] == ["container"]
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(params["name"])
    assert not os.path.exists(params["htpasswd_path"]) and not os.path.exists(params["data_dir"])

    first = run_module("registry_deploy", params, diff=True)
    assert first["changed"] and first["action"] == "create" and not first["recreated"], first
    assert first["status"] == 401
    assert first["url"] == "https://127.0.0.1:%d" % params["port"]
    assert first["users"] == {"added": ["ci"], "password_changed": [], "removed": []}
    container = engine.containers.get(params["name"])
    assert container.id == first["container_id"] and container.status == "running"
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"

    assert v2_status(params) == 401
    assert v2_status(params, auth=("ci", "first-password")) == 200
    assert v2_status(params, auth=("ci", "wrong")) == 401
    mode = os.stat(params["htpasswd_path"]).st_mode
    assert stat.S_IMODE(mode) == 0o600
    with open(params["htpasswd_path"]) as handle:
        assert handle.read().startswith("ci:$2b$08$")

    again_check = run_module("registry_deploy", params, check_mode=True, diff=True)
    again = run_module("registry_deploy", params, diff=True)
    for result in (again_check, again):
        assert not result["changed"] and result["action"] == "none", result
        assert result["changed_inputs"] == []
        assert result["diff"]["before"] == result["diff"]["after"]
    assert again["container_id"] == first["container_id"]


def test_the_password_never_appears_in_the_result(make_params, run_module):
    params = make_params(users=[{"name": "ci", "password": "Pa55-visible-if-leaked"}])
    result = run_module("registry_deploy", params, diff=True)
    assert not result["failed"], result
    assert "Pa55-visible-if-leaked" not in repr({k: v for k, v in result.items() if k != "invocation"})
    assert result["invocation"]["module_args"]["users"][0]["password"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_plain_http_gets_no_registry_answer(make_params, run_module):
    params = make_params()
    assert not run_module("registry_deploy", params)["failed"]
    answer = requests.get("http://127.0.0.1:%d/v2/" % params["port"], timeout=10)
    assert answer.status_code not in (200, 401)
    assert "HTTPS" in answer.text


def test_a_changed_password_recreates_once_and_storage_survives(engine, make_params, run_module):
    params = make_params()
    first = run_module("registry_deploy", params)
    assert not first["failed"], first.get("msg")
    digest = push_blob(params, ("ci", "first-password"), b"layer bytes that must survive a recreate")

    params["users"] = [{"name": "ci", "password": "second-password"}]
    predicted = run_module("registry_deploy", params, check_mode=True)
    assert predicted["changed"] and predicted["action"] == "recreate" and predicted["changed_inputs"] == ["htpasswd"], predicted
    assert engine.containers.get(params["name"]).id == first["container_id"]

    changed = run_module("registry_deploy", params)
    assert changed["recreated"] and changed["changed_inputs"] == ["htpasswd"], changed
    assert changed["users"]["password_changed"] == ["ci"]
    assert changed["container_id"] != first["container_id"]
    assert v2_status(params, auth=("ci", "first-password")) == 401
    assert v2_status(params, auth=("ci", "second-password")) == 200
    assert blob_present(params, ("ci", "second-password"), digest)

    settled = run_module("registry_deploy", params)
    assert not settled["changed"] and settled["container_id"] == changed["container_id"], settled


def test_users_are_added_and_removed(make_params, run_module):
    params = make_params()
    run_module("registry_deploy", params)
    params["users"] = [{"name": "ci", "password": "first-password"}, {"name": "nodes", "password": "pull-only"}]
    added = run_module("registry_deploy", params)
    assert added["users"] == {"added": ["nodes"], "password_changed": [], "removed": []}
    assert added["changed_inputs"] == ["htpasswd", "users"]
    assert v2_status(params, auth=("nodes", "pull-only")) == 200
    params["users"] = [{"name": "nodes", "password": "pull-only"}]
    removed = run_module("registry_deploy", params)
    assert removed["users"]["removed"] == ["ci"]
    assert v2_status(params, auth=("ci", "first-password")) == 401


def test_a_renewed_certificate_recreates_once(engine, make_params, pki, run_module):
    params = make_params()
    first = run_module("registry_deploy", params)
    assert not first["failed"], first.get("msg")
    renewed = pki.issue()

    changed = run_module("registry_deploy", params)
    assert changed["recreated"] and changed["changed_inputs"] == ["tls_cert", "tls_key"], changed
    served = ssl.get_server_certificate(("127.0.0.1", params["port"]))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    assert changed["container_id"] != first["container_id"]

    settled = run_module("registry_deploy", params)
    assert not settled["changed"], settled


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_cert", "tls_cert {cert}.gone does not exist"),
        ("mismatched_key", "does not match the certificate tls_cert {cert}"),
        ("not_pem", "cannot be used as a TLS server pair"),
        ("absent_image", "Image fleet-itest/absent-registry:0 is not on this host's Docker Engine"),
        ("port_in_use", "is already in use by another process on this host"),
        ("port_of_container", "is already published by the container"),
        ("bad_config", "config.auth is set by the module from users"),
        ("plain_http_auth", "would send every password in clear text over plain HTTP"),
        ("long_password", "longer than 72 bytes"),
    ],
)
def test_bad_input_fails_naming_it_and_the_registry_keeps_running(engine, make_params, pki, tmp_path, breakage, message, run_module):
    params = make_params()
    first = run_module("registry_deploy", params)
    assert not first["failed"], first
    bad = dict(params)
    holder = None
    if breakage == "missing_cert":
        bad["tls_cert"] = params["tls_cert"] + ".gone"
    elif breakage == "mismatched_key":
        bad["tls_key"] = pki.foreign_key()
    elif breakage == "not_pem":
        garbage = tmp_path / "garbage.crt"
        garbage.write_text("this is not a certificate\n")
        bad["tls_cert"] = str(garbage)
    elif breakage == "absent_image":
        bad["image"] = "fleet-itest/absent-registry:0"
    elif breakage == "port_in_use":
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        bad["port"] = holder.getsockname()[1]
    elif breakage == "port_of_container":
        other = make_params()
        assert not run_module("registry_deploy", other)["failed"]
        bad["port"] = other["port"]
        message += " " + other["name"]
    elif breakage == "bad_config":
        bad["config"] = {"auth": {"token": {"realm": "https://elsewhere"}}}
    elif breakage == "plain_http_auth":
        bad.update(registry_tls=False, tls_cert=None, tls_key=None, tls_ca=None)
    elif breakage == "long_password":
        bad["users"] = [{"name": "ci", "password": "x" * 73}]
    try:
        for check_mode in (True, False):
            result = run_module("registry_deploy", bad, check_mode=check_mode)
            assert result["failed"], result
            assert message.format(cert=params["tls_cert"]) in result["msg"], result["msg"]
    finally:
        if holder is not None:
            holder.close()
    assert_still_serving(engine, params, first["container_id"])
    if breakage == "absent_image":
        assert "fleet.images.image_load" in result["msg"]
    if breakage == "port_in_use":
        assert "127.0.0.1:%d" % bad["port"] in result["msg"]


def test_a_registry_that_dies_at_start_fails_with_its_log_lines(make_params, run_module):
    params = make_params(config={"log": {"level": "shouting"}}, wait_timeout=20)
    result = run_module("registry_deploy", params)
    assert result["failed"], result
    assert "stopped right after starting" in result["msg"] or "did not answer" in result["msg"], result["msg"]
    assert "shouting" in result["msg"], result["msg"]
    assert any("shouting" in line for line in result["logs"])


def test_a_stopped_registry_is_started_without_recreating(engine, make_params, run_module):
    params = make_params()
    first = run_module("registry_deploy", params)
    assert not first["failed"], first.get("msg")
    engine.containers.get(params["name"]).stop(timeout=5)
    started = run_module("registry_deploy", params)
    assert started["changed"] and started["action"] == "start" and not started["recreated"], started
    assert started["container_id"] == first["container_id"]
    assert v2_status(params) == 401


def test_restarted_restarts_every_time(engine, make_params, run_module):
    params = make_params()
    first = run_module("registry_deploy", params)
    assert not first["failed"], first.get("msg")
    before = engine.containers.get(params["name"]).attrs["State"]["StartedAt"]
    restarted = run_module("registry_deploy", dict(params, state="restarted"))
    assert restarted["changed"] and restarted["action"] == "restart", restarted
    assert restarted["container_id"] == first["container_id"]
    assert engine.containers.get(params["name"]).attrs["State"]["StartedAt"] != before


def test_absent_removes_the_container_and_keeps_the_storage(engine, make_params, run_module):
    params = make_params()
    run_module("registry_deploy", params)
    digest = push_blob(params, ("ci", "first-password"), b"kept across absent and present")
    absent = dict(params, state="absent")
    predicted = run_module("registry_deploy", absent, check_mode=True)
    assert predicted["changed"] and engine.containers.get(params["name"]).status == "running"
    removed = run_module("registry_deploy", absent)
    assert removed["changed"], removed
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(params["name"])
    assert not run_module("registry_deploy", absent)["changed"]
    assert os.path.isdir(params["data_dir"]) and os.path.isfile(params["htpasswd_path"])
    back = run_module("registry_deploy", params)
    assert back["action"] == "create"
    assert blob_present(params, ("ci", "first-password"), digest)


def test_plain_http_without_users_when_asked(make_params, run_module):
    params = make_params(registry_tls=False, users=[], tls_cert=None, tls_key=None, tls_ca=None)
    result = run_module("registry_deploy", params)
    assert not result["failed"], result
    assert result["url"].startswith("http://") and result["status"] == 200
    assert requests.get(result["url"] + "/v2/", timeout=10).status_code == 200


def test_config_and_options_reach_the_container_through_a_root_only_file(engine, make_params, run_module):
    config = {"log": {"level": "info"}, "http": {"secret": "fi-reg-shared-secret"}, "storage": {"cache": {"blobdescriptor": "inmemory"}}}
    params = make_params(delete_enabled=True, restart_policy="unless-stopped", config=config)
    first = run_module("registry_deploy", params, diff=True)
    assert not first["failed"], first.get("msg")
    assert "fi-reg-shared-secret" not in repr(first["diff"])
    attrs = engine.containers.get(params["name"]).attrs
    assert not [item for item in attrs["Config"]["Env"] or [] if item.startswith("REGISTRY_")]
    assert stat.S_IMODE(os.stat(params["config_path"]).st_mode) == 0o600
    with open(params["config_path"]) as handle:
        rendered = json.load(handle)
    assert rendered["http"]["secret"] == "fi-reg-shared-secret"
    assert rendered["storage"]["cache"] == {"blobdescriptor": "inmemory"}
    assert rendered["storage"]["delete"] == {"enabled": True}
    assert rendered["http"]["tls"]["minimumtls"] == "tls1.2"
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    binds = {m["Destination"]: (m["Source"], m["RW"]) for m in attrs["Mounts"]}
    assert binds["/var/lib/registry"] == (params["data_dir"], True)
    assert binds["/certs/tls.key"] == (params["tls_key"], False)
    assert binds["/etc/fleet-images/registry/config.yml"] == (params["config_path"], False)
    params["config"] = dict(config, log={"level": "warn"})
    changed = run_module("registry_deploy", params, diff=True)
    assert changed.get("changed_inputs") == ["config.log.level"], changed.get("msg")
    assert changed["diff"]["before"]["config"]["log.level"] != changed["diff"]["after"]["config"]["log.level"]
    assert changed["container_id"] != first["container_id"]


def test_a_registry_started_by_hand_is_taken_over(engine, make_params, run_module):
    params = make_params()
    engine.containers.run(REGISTRY_IMAGE, name=params["name"], detach=True)
    result = run_module("registry_deploy", params)
    assert result["recreated"] and result["changed_inputs"] == ["container"], result
    # ansible-core 2.19 returns warnings as structured events, older versions as strings.
    assert "was not created by fleet.images.registry_deploy" in repr(result.get("warnings"))
    assert v2_status(params) == 401


# Protections of issue 10: who can write, redeploys that keep serving, secrets, TLS.


def leftovers(engine, name):
    return sorted(c.name for c in engine.containers.list(all=True) if c.name in (name + "-candidate", name + "-previous"))


def test_a_redeploy_with_a_setting_distribution_refuses_keeps_the_old_registry_serving(engine, make_params, run_module):
    params = make_params()
    first = run_module("registry_deploy", params)
    assert not first["failed"], first.get("msg")
    with open(params["config_path"], "rb") as handle:
        config_before = handle.read()
    params_bad = dict(params, config={"log": {"level": "shouting"}}, wait_timeout=20)
    failed = run_module("registry_deploy", params_bad)
    assert failed["failed"], failed
    assert "left as it is, still serving" in failed["msg"] and "shouting" in failed["msg"], failed["msg"]
    assert_still_serving(engine, params, first["container_id"])
    assert leftovers(engine, params["name"]) == []
    # The file the running registry was started with is back: a restart of it (reboot) still works.
    with open(params["config_path"], "rb") as handle:
        assert handle.read() == config_before
    again = run_module("registry_deploy", params)
    assert not again["changed"] and again["container_id"] == first["container_id"], again


def test_a_new_registry_that_does_not_answer_gives_the_old_one_back(engine, make_params, run_module, tmp_path):
    """The swap itself (after a candidate passed, or with a remote engine where there is none) restores the old registry."""
    from ansible_collections.fleet.images.plugins.module_utils import registry as reg, registry_container as eng

    params = make_params()
    first = run_module("registry_deploy", params)
    assert not first["failed"], first.get("msg")
    broken = tmp_path / "broken.yml"
    broken.write_text(json.dumps({"version": "0.1", "storage": {"filesystem": {}}, "log": {"level": "shouting"}}))
    spec = reg.build_spec(dict(params, registry_tls=True, restart_policy="always"), "ignored", str(broken))
    put_back = []
    old = engine.containers.get(params["name"])
    with pytest.raises(eng.RegistryDeployError) as failure:
        eng.swap(engine, old, spec, {reg.LABEL_MANAGED: "fleet.images.registry_deploy"}, "https://127.0.0.1:%d" % params["port"],
                 params["tls_ca"], 10, lambda: put_back.append(True))
    assert "was put back and serves again" in str(failure.value)
    assert put_back == [True]
    assert_still_serving(engine, params, first["container_id"])
    assert leftovers(engine, params["name"]) == []


def test_a_run_interrupted_half_way_is_finished_by_the_next(engine, make_params, run_module):
    params = make_params()
    first = run_module("registry_deploy", params)
    assert not first["failed"], first.get("msg")
    # Killed after parking the old registry, with a candidate still there.
    old = engine.containers.get(params["name"])
    old.stop(timeout=5)
    old.rename(params["name"] + "-previous")
    engine.containers.create(REGISTRY_IMAGE, name=params["name"] + "-candidate",
                             labels={"fleet.images.registry.managed": "fleet.images.registry_deploy"})
    predicted = run_module("registry_deploy", params, check_mode=True)
    assert predicted["action"] == "start"
    assert leftovers(engine, params["name"]) == [params["name"] + "-candidate", params["name"] + "-previous"]
    back = run_module("registry_deploy", params)
    assert back["action"] == "start" and not back["failed"], back
    assert_still_serving(engine, params, first["container_id"])
    assert leftovers(engine, params["name"]) == []


def test_a_read_only_pull_endpoint_and_an_authenticated_push_endpoint_share_storage(engine, make_params, run_module, tmp_path):
    push = make_params()
    pull = make_params(users=[], read_only=True, data_dir=push["data_dir"])
    for params in (push, pull):
        result = run_module("registry_deploy", params)
        assert not result["failed"], result.get("msg")
    ca = push["tls_ca"]
    for params, refused in ((push, {401}), (pull, {405})):
        base = "https://127.0.0.1:%d" % params["port"]
        # Anonymous writes are refused on both endpoints.
        anonymous = requests.post(base + "/v2/evil/injected/blobs/uploads/", verify=ca, timeout=10)
        assert anonymous.status_code in refused, (params["name"], anonymous.status_code, anonymous.text)
        wrong = requests.post(base + "/v2/evil/injected/blobs/uploads/", auth=("ci", "wrong"), verify=ca, timeout=10)
        assert wrong.status_code in refused, (params["name"], wrong.status_code)
    # Credentials do not make the read-only endpoint writable.
    with_credentials = requests.post("https://127.0.0.1:%d/v2/x/blobs/uploads/" % pull["port"], auth=("ci", "first-password"),
                                     verify=ca, timeout=10)
    assert with_credentials.status_code == 405
    digest = push_blob(push, ("ci", "first-password"), b"pushed on the write endpoint, read on the pull one")
    # Pullable anonymously at once through the read-only endpoint (same filesystem storage, no cache).
    assert blob_present(pull, None, digest)
    assert v2_status(pull) == 200


def _client_context(ca, version):
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is what this test offers on purpose
        context.minimum_version = context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _handshake(port, ca, version):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with _client_context(ca, version).wrap_socket(raw) as tls:
            return tls.version()


def _tls11_control(pki):
    """The same TLS 1.1 client against a server that allows 1.1: it connects, so a refusal comes from the registry."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.cert_path, pki.key_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server.minimum_version = ssl.TLSVersion.TLSv1_1
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def accept():
            conn = listener.accept()[0]
            with contextlib.suppress(OSError), server.wrap_socket(conn, server_side=True):
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        version = _handshake(listener.getsockname()[1], pki.ca_path, ssl.TLSVersion.TLSv1_1)
        thread.join(10)
    return version


def test_tls_below_the_minimum_is_refused_and_the_minimum_can_be_raised(make_params, pki, run_module):
    default = make_params()
    raised = make_params(tls_min_version="1.3")
    for params in (default, raised):
        assert not run_module("registry_deploy", params)["failed"]
    assert _tls11_control(pki) == "TLSv1.1"
    assert _handshake(default["port"], default["tls_ca"], ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    with pytest.raises(ssl.SSLError):
        _handshake(default["port"], default["tls_ca"], ssl.TLSVersion.TLSv1_1)
    with pytest.raises(ssl.SSLError):
        _handshake(raised["port"], raised["tls_ca"], ssl.TLSVersion.TLSv1_2)
    assert _handshake(raised["port"], raised["tls_ca"], ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def test_docker_inspect_holds_no_secret(engine, make_params, run_module):
    secrets = ["fi-reg-http-secret-0x51", "fi-reg-password-0x52", "fi-reg-s3-secret-0x53"]
    params = make_params(users=[{"name": "ci", "password": secrets[1]}],
                         config={"http": {"secret": secrets[0]}, "notifications": {"endpoints": [
                             {"name": "audit", "url": "https://127.0.0.1:9/x", "disabled": True,
                              "headers": {"Authorization": ["Bearer " + secrets[2]]}}]}})
    result = run_module("registry_deploy", params, diff=True)
    assert not result["failed"], result.get("msg")
    inspected = json.dumps(engine.api.inspect_container(params["name"]))
    shown = json.dumps({k: v for k, v in result.items() if k != "invocation"})
    for secret in secrets:
        assert secret not in inspected
        assert secret not in shown
    with open(params["config_path"]) as handle:
        assert secrets[0] in handle.read()


def test_basic_auth_over_plain_http_only_when_explicitly_allowed(make_params, run_module):
    params = make_params(registry_tls=False, tls_cert=None, tls_key=None, tls_ca=None)
    refused = run_module("registry_deploy", params)
    assert refused["failed"] and "allow_plain_http_auth" in refused["msg"], refused
    allowed = run_module("registry_deploy", dict(params, allow_plain_http_auth=True))
    assert not allowed["failed"] and allowed["status"] == 401, allowed


# The engine connection's TLS (tls, ca_path, ...) and the registry's own HTTPS (registry_tls) are independent.


@pytest.fixture
def plain_tcp_engine():
    """tcp://127.0.0.1:PORT serving the local engine's API without TLS."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve():
        while True:
            try:
                client = listener.accept()[0]
            except OSError:
                return
            splice_to_engine(client)

    threading.Thread(target=serve, daemon=True).start()
    yield "tcp://127.0.0.1:%d" % listener.getsockname()[1]
    listener.close()


def test_a_tls_engine_connection_deploys_a_plain_http_registry(tls_engine, make_params, run_module):
    docker_host, engine_ca, wrong_ca = tls_engine
    params = make_params(docker_host=docker_host, tls=True, ca_path=engine_ca,
                         registry_tls=False, users=[], tls_cert=None, tls_key=None, tls_ca=None)
    result = run_module("registry_deploy", params)
    assert not result["failed"], result.get("msg")
    assert result["url"] == "http://127.0.0.1:%d" % params["port"] and result["status"] == 200
    assert requests.get(result["url"] + "/v2/", timeout=10).status_code == 200
    # The engine's certificate is still verified with the engine's CA, whatever the registry serves.
    refused = run_module("registry_deploy", dict(params, ca_path=wrong_ca))
    assert refused["failed"] and "ca_path does not verify" in refused["msg"], refused.get("msg")


def test_a_plain_tcp_engine_connection_deploys_a_tls_registry(plain_tcp_engine, make_params, run_module):
    params = make_params(docker_host=plain_tcp_engine)
    result = run_module("registry_deploy", params)
    assert not result["failed"], result.get("msg")
    assert result["url"] == "https://127.0.0.1:%d" % params["port"] and result["status"] == 401
    assert v2_status(params, auth=("ci", "first-password")) == 200


# bcrypt runs on the controller: the registry host needs no Python package for the htpasswd file.


@pytest.fixture
def host_without_bcrypt(tmp_path):
    """A task environment in which `import bcrypt` fails for the module on the host (the controller keeps its own)."""
    fake = tmp_path / "no-bcrypt" / "bcrypt"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no bcrypt on this host')\n")
    return {"PYTHONPATH": str(fake.parent)}


def test_the_action_hashes_on_the_controller_and_keeps_unchanged_hashes(make_params, host_without_bcrypt, tmp_path, run_module):
    params = make_params()
    direct = run_module("registry_deploy", params, env={"PYTHONPATH": host_without_bcrypt["PYTHONPATH"] + os.pathsep + str(COLLECTIONS_ROOT)})
    assert direct["failed"] and "Python package bcrypt is missing" in direct["msg"], direct
    first, output = run_task(tmp_path, "registry_deploy", params, environment=host_without_bcrypt)
    # (the json callback's own "action" key hides the module's: changed_inputs tells what happened)
    assert first.get("changed") and first["changed_inputs"] == ["container"] and first["status"] == 401, first
    assert first["users"] == {"added": ["ci"], "password_changed": [], "removed": []}
    assert "first-password" not in output
    with open(params["htpasswd_path"]) as handle:
        hashed = handle.read()
    assert hashed.startswith("ci:$2b$08$")
    assert v2_status(params, auth=("ci", "first-password")) == 200
    again, _output = run_task(tmp_path, "registry_deploy", params, environment=host_without_bcrypt)
    assert not again["changed"] and again["changed_inputs"] == [] and "status" not in again, again
    with open(params["htpasswd_path"]) as handle:
        assert handle.read() == hashed
    params["users"] = [{"name": "ci", "password": "second-password"}]
    changed, _output = run_task(tmp_path, "registry_deploy", params, environment=host_without_bcrypt)
    assert changed["recreated"] and changed["users"]["password_changed"] == ["ci"], changed
    assert v2_status(params, auth=("ci", "second-password")) == 200
