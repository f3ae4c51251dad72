"""The registry's pure logic: configuration variables, fingerprint and what-changed, URLs, image names."""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleet.images.plugins.module_utils import registry
from ansible_collections.fleet.images.plugins.module_utils.registry import (
    RegistryConfigError,
    build_spec,
    changed_inputs,
    config_text,
    container_labels,
    fingerprint,
    host_port,
    normalize_registry,
    parse_inputs_label,
    probe_host,
    registry_url,
    render_config,
    repo_digest_matches,
    spec_inputs,
    target_reference,
)

PARAMS = {
    "name": "registry",
    "image": "registry:2",
    "bind_address": "0.0.0.0",
    "port": 5000,
    "data_dir": "/var/lib/fleet-images/registry/registry",
    "registry_tls": True,
    "tls_cert": "/etc/pki/server.crt",
    "tls_key": "/etc/pki/server.key",
    "restart_policy": "always",
}
CONFIG_PATH = "/etc/fleet-images/registry/registry/config.yml"
DIGESTS = {"tls_cert": "sha256:" + "c" * 64, "tls_key": "sha256:" + "k" * 64, "htpasswd": "sha256:" + "h" * 64}


def inputs_for(params=None, digests=None, config=None, users=("ci",), image_id="sha256:" + "1" * 64, delete_enabled=False):
    params = dict(PARAMS, **(params or {}))
    rendered = render_config(config or {}, params["registry_tls"], bool(users), delete_enabled, "registry registry")
    spec = build_spec(params, image_id, CONFIG_PATH, "/etc/fleet-images/registry/registry/htpasswd" if users else None)
    return spec_inputs(spec, dict(DIGESTS, **(digests or {})), list(users), params["registry_tls"], delete_enabled, rendered, config or {})


# The configuration file


def test_the_module_settings_and_the_user_config_make_one_file():
    rendered = render_config({
        "storage": {"maintenance": {"uploadpurging": {"enabled": False}}, "cache": {"blobdescriptor": "inmemory"}},
        "log": {"level": "debug"},
        "http": {"secret": "s3cr3t", "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }, True, True, False, "site registry")
    assert rendered == {
        "version": "0.1",
        "log": {"level": "debug"},
        "storage": {"filesystem": {"rootdirectory": registry.DATA_MOUNT}, "delete": {"enabled": False},
                    "maintenance": {"uploadpurging": {"enabled": False}}, "cache": {"blobdescriptor": "inmemory"}},
        "http": {"addr": ":5000", "secret": "s3cr3t", "headers": {"X-Content-Type-Options": ["nosniff"]},
                 "tls": {"certificate": registry.CERT_MOUNT, "key": registry.KEY_MOUNT, "minimumtls": "tls1.2"}},
        "auth": {"htpasswd": {"realm": "site registry", "path": registry.HTPASSWD_MOUNT}},
    }
    assert json.loads(config_text(rendered)) == rendered
    assert config_text(rendered) == config_text(json.loads(config_text(rendered)))


@pytest.mark.parametrize("version, expected", [("1.2", "tls1.2"), ("1.3", "tls1.3")])
def test_the_tls_minimum_is_always_written(version, expected):
    assert render_config({}, True, False, False, "r", tls_min_version=version)["http"]["tls"]["minimumtls"] == expected
    with pytest.raises(RegistryConfigError, match="tls_min_version '1.1'"):
        render_config({}, True, False, False, "r", tls_min_version="1.1")


def test_read_only_storage_refuses_writes_and_purges_nothing():
    storage = render_config({}, True, False, False, "r", read_only=True)["storage"]
    assert storage["maintenance"] == {"readonly": {"enabled": True}, "uploadpurging": {"enabled": False}}
    assert "maintenance" not in render_config({}, True, False, False, "r")["storage"]


def test_a_storage_driver_in_config_replaces_the_filesystem_one():
    storage = render_config({"storage": {"s3": {"bucket": "b"}}}, True, False, False, "r")["storage"]
    assert "filesystem" not in storage and storage["s3"] == {"bucket": "b"}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"log": {"level": None}}, r"config\.log\.level has no value"),
        ({"log": {"level": {1, 2}}}, r"config\.log\.level: .* cannot be passed"),
    ],
    ids=["none", "set"],
)
def test_config_values_distribution_cannot_take_are_refused(config, message):
    with pytest.raises(RegistryConfigError, match=message):
        render_config(config, True, True, False, "r")


@pytest.mark.parametrize(
    "config, option",
    [
        ({"http": {"tls": {"certificate": "/x"}}}, "registry_tls, tls_cert, tls_key and tls_min_version"),
        ({"http": {"tls": {"minimumtls": "tls1.0"}}}, "tls_min_version"),
        ({"http": {"addr": ":6000"}}, "port and bind_address"),
        ({"auth": {"htpasswd": {"path": "/x"}}}, "users"),
        ({"auth": {"token": {"realm": "x"}}}, "users"),
        ({"storage": {"delete": {"enabled": True}}}, "delete_enabled"),
        ({"storage": {"maintenance": {"readonly": {"enabled": False}}}}, "read_only"),
    ],
)
def test_config_cannot_redefine_what_options_set(config, option):
    with pytest.raises(RegistryConfigError, match="use that option instead") as caught:
        render_config(config, True, True, False, "realm")
    assert option in str(caught.value)


def test_config_may_set_neighbours_of_managed_keys():
    rendered = render_config({"http": {"host": "https://reg.example:5000"}, "storage": {"maintenance": {"uploadpurging": {"age": "1h"}}}},
                             True, True, False, "r")
    assert rendered["http"]["host"] == "https://reg.example:5000"
    assert rendered["storage"]["maintenance"] == {"uploadpurging": {"age": "1h"}}


@pytest.mark.parametrize("tls, auth", [(True, True), (True, False), (False, True), (False, False)])
def test_managed_settings_follow_the_options(tls, auth):
    rendered = render_config({}, tls, auth, True, "site registry")
    assert rendered["http"]["addr"] == ":5000"
    assert rendered["storage"]["delete"] == {"enabled": True}
    assert ("tls" in rendered["http"]) is tls
    assert ("auth" in rendered) is auth
    if auth:
        assert rendered["auth"]["htpasswd"] == {"realm": "site registry", "path": registry.HTPASSWD_MOUNT}


# Fingerprint and what changed


def test_same_inputs_same_fingerprint_and_nothing_changed():
    assert fingerprint(inputs_for()) == fingerprint(inputs_for())
    assert changed_inputs(inputs_for(), inputs_for()) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"digests": {"tls_cert": "sha256:" + "d" * 64}}, ["tls_cert"]),
        ({"digests": {"tls_key": "sha256:" + "e" * 64}}, ["tls_key"]),
        ({"digests": {"htpasswd": "sha256:" + "f" * 64}}, ["htpasswd"]),
        ({"image_id": "sha256:" + "2" * 64}, ["image_id"]),
        ({"params": {"port": 5001}}, ["listen"]),
        ({"params": {"bind_address": "10.0.0.5"}}, ["listen"]),
        ({"params": {"restart_policy": "unless-stopped"}}, ["restart_policy"]),
        ({"params": {"data_dir": "/srv/registry"}}, ["data_dir", "mounts"]),
        ({"params": {"image": "registry:3"}}, ["image"]),
        ({"users": ("ci", "nodes")}, ["users"]),
        ({"delete_enabled": True}, ["config.storage.delete.enabled", "delete_enabled"]),
        ({"config": {"log": {"level": "debug"}}}, ["config.log.level"]),
    ],
    ids=["cert", "key", "htpasswd", "image-id", "port", "address", "restart", "data-dir", "image", "users", "delete", "config"],
)
def test_each_input_changes_the_fingerprint_and_is_named(change, expected):
    before = inputs_for()
    after = inputs_for(**change)
    assert fingerprint(before) != fingerprint(after)
    assert changed_inputs(before, after) == expected


def test_no_record_means_the_container_itself_is_the_change():
    assert changed_inputs(None, inputs_for()) == ["container"]


def test_secret_config_values_are_kept_as_digests_only():
    inputs = inputs_for(config={"http": {"secret": "hunter2-very-secret"}})
    text = json.dumps(inputs)
    assert "hunter2" not in text
    assert inputs["config"]["http.secret"].startswith("sha256:")
    # What the module sets itself is readable in a diff.
    assert inputs["config"]["http.tls.certificate"] == registry.CERT_MOUNT


def test_the_label_round_trips_and_a_broken_label_counts_as_none():
    inputs = inputs_for()
    labels = container_labels(inputs)
    assert parse_inputs_label(labels) == inputs
    assert labels[registry.LABEL_FINGERPRINT] == fingerprint(inputs)
    assert parse_inputs_label({registry.LABEL_INPUTS: "{not json"}) is None
    assert parse_inputs_label({registry.LABEL_INPUTS: "[1]"}) is None
    assert parse_inputs_label({}) is None
    assert parse_inputs_label(None) is None


def test_spec_mounts_files_read_only_and_storage_read_write():
    spec = build_spec(dict(PARAMS), "sha256:1", CONFIG_PATH, "/etc/h")
    assert [(m["target"], m["read_only"]) for m in spec["mounts"]] == [
        (registry.DATA_MOUNT, False), (registry.CONFIG_MOUNT, True), (registry.CERT_MOUNT, True), (registry.KEY_MOUNT, True),
        (registry.HTPASSWD_MOUNT, True),
    ]
    assert spec["command"] == ["serve", registry.CONFIG_MOUNT] and "env" not in spec
    plain = build_spec(dict(PARAMS, registry_tls=False), "sha256:1", CONFIG_PATH)
    assert [m["target"] for m in plain["mounts"]] == [registry.DATA_MOUNT, registry.CONFIG_MOUNT]


def test_container_names_are_checked():
    registry.check_name("itest-registry-a.1_b")
    for bad in ("", "-x", "a/b", "a b"):
        with pytest.raises(RegistryConfigError, match="not a valid container name"):
            registry.check_name(bad)


# Addresses and URLs


@pytest.mark.parametrize(
    "bind, expected",
    [("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("::", "::1"), ("10.1.2.3", "10.1.2.3"), ("127.0.0.1", "127.0.0.1")],
)
def test_probe_host(bind, expected):
    assert probe_host(bind) == expected


def test_urls_bracket_ipv6():
    assert host_port("::1", 5000) == "[::1]:5000"
    assert host_port("reg.example", 443) == "reg.example:443"
    assert registry_url("127.0.0.1", 5000) == "https://127.0.0.1:5000"
    assert registry_url("::1", 5000, tls=False) == "http://[::1]:5000"


@pytest.mark.parametrize(
    "given, expected",
    [("reg.example:5000", "reg.example:5000"), ("https://reg.example:5000/", "reg.example:5000"), ("10.0.0.5:5000", "10.0.0.5:5000"),
     ("[::1]:5000", "[::1]:5000"), ("reg", "reg")],
)
def test_registry_names_are_normalized(given, expected):
    assert normalize_registry(given) == expected


@pytest.mark.parametrize("bad", ["", "reg.example:5000/path", "../x", "reg example"])
def test_registry_names_with_paths_are_refused(bad):
    with pytest.raises(RegistryConfigError, match="must be host or host:port"):
        normalize_registry(bad)


# Image names in the site registry


@pytest.mark.parametrize(
    "reference, mirror, expected",
    [
        ("nginx:1.25", False, ("nginx", "1.25", "reg:5000/nginx:1.25")),
        ("nginx:1.25", True, ("library/nginx", "1.25", "reg:5000/library/nginx:1.25")),
        ("nginx", True, ("library/nginx", "latest", "reg:5000/library/nginx:latest")),
        ("library/nginx:1.25", False, ("nginx", "1.25", "reg:5000/nginx:1.25")),
        ("library/nginx:1.25", True, ("library/nginx", "1.25", "reg:5000/library/nginx:1.25")),
        ("docker.io/library/nginx:1.25", True, ("library/nginx", "1.25", "reg:5000/library/nginx:1.25")),
        ("docker.io/nginx:1.25", True, ("library/nginx", "1.25", "reg:5000/library/nginx:1.25")),
        ("bitnami/redis:7.2", False, ("bitnami/redis", "7.2", "reg:5000/bitnami/redis:7.2")),
        ("bitnami/redis:7.2", True, ("bitnami/redis", "7.2", "reg:5000/bitnami/redis:7.2")),
        ("registry.example.com/team/app:2.1", True, ("team/app", "2.1", "reg:5000/team/app:2.1")),
        ("registry.example.com/app:2.1", True, ("app", "2.1", "reg:5000/app:2.1")),
        ("localhost:5000/tools/x:1", False, ("tools/x", "1", "reg:5000/tools/x:1")),
        ("nginx:1.25@sha256:" + "a" * 64, True, ("library/nginx", "1.25", "reg:5000/library/nginx:1.25")),
    ],
)
def test_target_names(reference, mirror, expected):
    assert target_reference(reference, "reg:5000", mirror) == expected


def test_a_digest_without_tag_cannot_be_pushed():
    with pytest.raises(RegistryConfigError, match="has a digest but no tag"):
        target_reference("nginx@sha256:" + "a" * 64, "reg:5000")


@pytest.mark.parametrize("bad", ["Nginx:1", "nginx:-x", "team//app:1", ""])
def test_invalid_references_are_refused(bad):
    with pytest.raises(RegistryConfigError):
        target_reference(bad, "reg:5000")


def test_repo_digest_matching_is_per_registry_and_repository():
    digest = "sha256:" + "9" * 64
    digests = ["reg:5000/library/nginx@" + digest, "nginx@sha256:" + "8" * 64]
    assert repo_digest_matches(digests, "reg:5000", "library/nginx", digest)
    assert not repo_digest_matches(digests, "other:5000", "library/nginx", digest)
    assert not repo_digest_matches(digests, "reg:5000", "nginx", digest)
    assert not repo_digest_matches(None, "reg:5000", "library/nginx", digest)


def test_certs_d_path():
    assert registry.certs_d_ca_path("https://reg.example:5000") == "/etc/docker/certs.d/reg.example:5000/ca.crt"
