"""daemon.json logic without an engine: parse, merge, remove, validate, classify, mask."""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleet.images.plugins.module_utils import daemon_json as dj
from ansible_collections.fleet.images.plugins.module_utils import daemon_schema as schema
from ansible_collections.fleet.images.plugins.module_utils import url_secrets


# --- parsing -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, column, fragment", [
    ('{\n  "debug": true\n  "log-level": "info"\n}\n', 3, 3, "Expecting ',' delimiter"),
    ('{"debug": true,}', 1, 16, "Expecting property name"),
    ('{"registry-mirrors": ["https://a.example",]}', 1, 43, "Expecting value"),
    ("{'debug': true}", 1, 2, "Expecting property name enclosed in double quotes"),
    ('{"debug": tru}', 1, 11, "Expecting value"),
])
def test_parse_error_names_line_and_column(text, line, column, fragment):
    with pytest.raises(dj.ParseError) as caught:
        dj.parse_config(text, "/etc/docker/daemon.json")
    message = str(caught.value)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert "/etc/docker/daemon.json is not valid JSON" in message
    assert fragment in message
    assert "line %d, column %d" % (line, column) in message
    # the offending line is not quoted: it may hold a proxy password
    assert text.splitlines()[line - 1].strip() not in message


@pytest.mark.parametrize("password", ["p@ss", "p:a@ss", "pa/ss", "p%40ss", "s3cr3t"])
def test_an_invalid_file_is_never_quoted_in_the_error(password):
    # the error is on the line that holds the password
    text = '{\n  "proxies": {"http-proxy": "http://user:%s@proxy.example:3128"} "debug": true\n}\n' % password
    with pytest.raises(dj.ParseError) as caught:
        dj.parse_config(text, "/etc/docker/daemon.json")
    assert caught.value.line == 2 and "line 2, column %d" % caught.value.column in str(caught.value)
    assert password not in str(caught.value) and "user:" not in str(caught.value)


@pytest.mark.parametrize("depth", [100, 5000, 200000])
def test_deep_nesting_is_a_clear_error(depth):
    with pytest.raises(dj.ParseError, match=r"/p nests objects or lists (too deeply|more than 64 levels)"):
        dj.parse_config('{"a": ' + "[" * depth + "]" * depth + "}", "/p")


def test_nesting_depth():
    assert dj.nesting_depth({}) == 1 and dj.nesting_depth({"a": [1, {"b": []}]}) == 4 and dj.nesting_depth(3) == 0
    assert dj.parse_config('{"a": ' + "[" * 63 + "]" * 63 + "}")[0]


@pytest.mark.parametrize("text", ["", "   \n\t\n", "\ufeff"])
def test_empty_file_is_invalid_like_dockerd_says(text):
    with pytest.raises(dj.ParseError, match=r"is empty: dockerd refuses an empty daemon.json"):
        dj.parse_config(text, "/etc/docker/daemon.json")


@pytest.mark.parametrize("text, kind", [("[]", "a list"), ('"x"', 'a string'), ("null", "null"), ("3", "a number")])
def test_top_level_must_be_an_object(text, kind):
    with pytest.raises(dj.ParseError, match=r"must hold a JSON object \(\{\.\.\.\}\); it holds %s" % kind):
        dj.parse_config(text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(constant):
    with pytest.raises(dj.ParseError, match="holds %s, which is not JSON" % constant):
        dj.parse_config('{"mtu": %s}' % constant)


def test_parse_keeps_order_accepts_bom_and_warns_about_duplicates():
    config, warnings = dj.parse_config('\ufeff{"b": 1, "a": {"y": 1, "x": 2}, "b": 3}', "/p")
    assert list(config) == ["b", "a"] and config["b"] == 3 and list(config["a"]) == ["y", "x"]
    assert warnings == ["/p sets 'b' more than once; dockerd uses the last one"]


def test_render_is_stable_two_space_json_with_final_newline():
    config = {"registry-mirrors": ["https://m.example"], "log-opts": {"max-size": "10m"}, "name": "é"}
    text = dj.render_config(config)
    assert text.endswith("}\n") and '\n  "log-opts": {\n    "max-size": "10m"\n  }' in text
    assert "é" in text
    assert dj.parse_config(text)[0] == config


# --- merging -------------------------------------------------------------------------------

@pytest.mark.parametrize("base, overlay, mode, expected", [
    # foreign keys are kept, scalars replaced
    ({"data-root": "/d", "debug": False}, {"debug": True}, "replace", {"data-root": "/d", "debug": True}),
    # objects merge key by key
    ({"log-opts": {"max-size": "10m", "max-file": "3"}}, {"log-opts": {"max-file": "5"}}, "replace",
     {"log-opts": {"max-size": "10m", "max-file": "5"}}),
    # lists: replace
    ({"dns": ["1.1.1.1", "8.8.8.8"]}, {"dns": ["9.9.9.9"]}, "replace", {"dns": ["9.9.9.9"]}),
    # lists: append without duplicates, existing order first
    ({"dns": ["1.1.1.1", "8.8.8.8"]}, {"dns": ["9.9.9.9", "1.1.1.1"]}, "append_unique", {"dns": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]}),
    # mirrors compare as dockerd does: case of host and a trailing slash do not make a new mirror
    ({"registry-mirrors": ["https://Mirror.example:5000/"]}, {"registry-mirrors": ["https://mirror.example:5000", "https://b.example"]},
     "append_unique", {"registry-mirrors": ["https://Mirror.example:5000/", "https://b.example"]}),
    ({"insecure-registries": ["Reg.example:5000"]}, {"insecure-registries": ["reg.example:5000"]}, "append_unique",
     {"insecure-registries": ["Reg.example:5000"]}),
    # nested lists follow the same mode
    ({"default-address-pools": [{"base": "10.1.0.0/16", "size": 24}]}, {"default-address-pools": [{"size": 24, "base": "10.1.0.0/16"}]},
     "append_unique", {"default-address-pools": [{"base": "10.1.0.0/16", "size": 24}]}),
    # a type change replaces whatever was there
    ({"log-opts": "broken"}, {"log-opts": {"max-size": "1m"}}, "replace", {"log-opts": {"max-size": "1m"}}),
    # new keys are appended after the existing ones
    ({"a": 1}, {"b": 2}, "append_unique", {"a": 1, "b": 2}),
])
def test_merge(base, overlay, mode, expected):
    before = json.dumps(base)
    merged = dj.merge(base, overlay, mode)
    assert merged == expected
    assert list(merged) == list(expected)
    assert json.dumps(base) == before, "merge must not modify its input"


def test_merge_refuses_an_unknown_mode():
    with pytest.raises(dj.DaemonJsonError, match="list_merge must be one of replace, append_unique"):
        dj.merge({}, {"a": [1]}, "prepend")


# --- removing ------------------------------------------------------------------------------

@pytest.mark.parametrize("config, paths, expected, removed", [
    ({"debug": True, "mtu": 1400}, ["debug"], {"mtu": 1400}, ["debug"]),
    ({"log-opts": {"max-size": "10m", "max-file": "3"}}, ["log-opts.max-file"], {"log-opts": {"max-size": "10m"}}, ["log-opts.max-file"]),
    # a missing key is not an error and changes nothing
    ({"debug": True}, ["mtu", "log-opts.max-file"], {"debug": True}, []),
    # keys that contain dots are found whole
    ({"default-network-opts": {"bridge": {"com.docker.network.driver.mtu": "1400", "x": "1"}}},
     ["default-network-opts.bridge.com.docker.network.driver.mtu"], {"default-network-opts": {"bridge": {"x": "1"}}},
     ["default-network-opts.bridge.com.docker.network.driver.mtu"]),
    # a path through a non-object is not there
    ({"debug": True}, ["debug.x"], {"debug": True}, []),
])
def test_remove_paths(config, paths, expected, removed):
    result, gone = dj.remove_paths(config, paths)
    assert result == expected
    assert gone == removed


# --- value checks --------------------------------------------------------------------------

@pytest.mark.parametrize("value, problem", [
    ("https://mirror.example", None),
    ("http://10.0.0.5:5000/", None),
    ("https://[2001:db8::1]:5000", None),
    ("mirror.example:5000", 'has no scheme: write it as https://mirror.example:5000'),
    ("ftp://mirror.example", "uses the scheme ftp"),
    ("https://mirror.example/v2/", "has a path, query or fragment"),
    ("https://mirror.example/?a=1", "has a path, query or fragment"),
    ("https://user:secret@mirror.example", "carries credentials"),
    ("https://", "names no host"),
    ("https://bad_host.example", "names an invalid host"),
    ("https://mirror.example:70000", "has a port that is not a number from 1 to 65535"),
    ("https://mirror.example:0", "has port 0 outside 1-65535"),
    (42, "must be a JSON string, not a number"),
])
def test_check_mirror(value, problem):
    result = schema.check_mirror(value)
    if problem is None:
        assert result is None
    else:
        assert problem in result
        assert "secret" not in result


@pytest.mark.parametrize("value, problem", [
    ("registry.example:5000", None),
    ("registry.example", None),
    ("10.0.0.0/8", None),
    ("192.168.1.20:5000", None),
    ("[2001:db8::1]:5000", None),
    ("http://registry.example:5000", "has a scheme: write an insecure registry as host:port or as a CIDR range (for example registry.example:5000)"),
    ("10.0.0.0/33", "neither host[:port] nor a CIDR range"),
    ("registry.example:port", "the port must be a number"),
    ("registry.example:0", "port 0 outside"),
    ("bad host", "invalid host"),
])
def test_check_insecure_registry(value, problem):
    result = schema.check_insecure_registry(value)
    assert result is None if problem is None else problem in result


@pytest.mark.parametrize("key, value, fragment", [
    ("live-restore", "true", "must be a JSON boolean (true or false without quotes), not the string \"true\": Docker 23 and later refuse quoted booleans"),
    ("debug", 1, "must be a JSON boolean (true or false), not a number"),
    ("max-concurrent-downloads", "3", "must be a whole JSON number (without quotes)"),
    ("max-concurrent-downloads", -1, "must be 0 or more"),
    ("mtu", 1400.0, "must be a whole JSON number, not a decimal number"),
    ("shutdown-timeout", True, "must be a whole JSON number, not a boolean"),
    ("log-opts", {"max-file": 3}, 'entry "max-file" must be a JSON string, not a number'),
    ("log-level", "verbose", "must be one of debug, info, warn, error, fatal"),
    ("labels", ["site=a", "broken"], 'item 2 "broken" must be key=value'),
    ("labels", ["site=a", "site=b"], 'sets "site" twice with different values ("a" and "b"): dockerd refuses conflicting labels'),
    ("dns-search", ["corp.example", "bad domain!"], 'item 2 "bad domain!" is not a valid domain'),
    ("dns", ["8.8.8.8", "dns.example"], "item 2 must be an IP address"),
    ("bip", "172.31.0.1", "must carry a prefix length"),
    ("default-address-pools", [{"base": "10.10.0.0/16", "size": "24"}], "item 1 size must be a whole JSON number"),
    ("data-root", "var/lib/docker", "must be an absolute path"),
    ("default-shm-size", 64, "must be a JSON string"),
    ("features", {"buildkit": "true"}, 'entry "buildkit" must be a JSON boolean'),
    ("proxies", {"http-proxy": "proxy.example:3128"}, 'has no scheme: write it as http://proxy.example:3128'),
    ("proxies", {"ftp-proxy": "http://p.example"}, 'unknown entry "ftp-proxy"'),
    ("registry-mirrors", "https://m.example", "must be a JSON list, not the string"),
    ("insecure-registries", ["https://r.example"], "has a scheme"),
])
def test_validate_config_rejects_wrong_values_of_changed_keys(key, value, fragment):
    report = schema.validate_config({key: value}, [key], engine_version=(26, 1, 5))
    assert report.warnings == []
    assert len(report.errors) == 1
    assert report.errors[0].startswith("'%s' " % key)
    assert fragment in report.errors[0]


@pytest.mark.parametrize("key, value", [
    ("live-restore", True), ("max-concurrent-downloads", 0), ("log-opts", {"max-size": "10m"}), ("log-level", "warn"),
    ("labels", ["a=b", "a=b", "c=d=e"]), ("dns", ["2001:db8::53"]), ("dns-search", [".", "corp.example.", "a-b.example"]),
    ("bip", "172.31.0.1/16"), ("default-shm-size", "64M"),
    ("default-address-pools", [{"base": "10.10.0.0/16", "size": 24}]), ("features", {"buildkit": True}),
    ("default-ulimits", {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}}),
    ("runtimes", {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--debug"]}}),
    ("proxies", {"http-proxy": "http://u:p@proxy.example:3128", "https-proxy": "", "no-proxy": "localhost,.corp"}),
    ("default-network-opts", {"bridge": {"com.docker.network.driver.mtu": "1400"}}),
])
def test_validate_config_accepts_good_values(key, value):
    assert schema.validate_config({key: value}, [key], engine_version=(26, 1, 5)) == schema.ValidationReport([], [])


def test_problems_in_untouched_keys_are_errors_that_say_so():
    # dockerd reads the whole file at its next start, whatever restarts it
    report = schema.validate_config({"debug": "true", "registry-mirrors": ["https://m.example"]}, ["registry-mirrors"], (26, 1, 5))
    assert report.warnings == []
    assert len(report.errors) == 1 and report.errors[0].startswith("'debug' must be a JSON boolean")
    assert "already in the file before this change" in report.errors[0]


@pytest.mark.parametrize("key, suggestion", [("registry-mirrorz", "registry-mirrors"), ("insecure-registrys", "insecure-registries"),
                                             ("liverestore", "live-restore"), ("completely-unknown", None)])
def test_unknown_keys_are_refused_with_a_suggestion(key, suggestion):
    report = schema.validate_config({key: ["x"]}, [key])
    assert len(report.errors) == 1
    assert "'%s' is not a daemon.json key dockerd knows" % key in report.errors[0]
    assert ("did you mean '%s'" % suggestion in report.errors[0]) == bool(suggestion)


def test_unknown_keys_are_left_to_dockerd_validate_when_it_runs_with_a_warning():
    report = schema.validate_config({"live-restor": True}, ["live-restor"], (27, 0, 0), unknown_keys_checked_elsewhere=True)
    assert report.errors == []
    assert report.warnings == ["'live-restor' is not a daemon.json key this module knows (did you mean 'live-restore'?); dockerd --validate decides"]


@pytest.mark.parametrize("key, right", [("registry-mirror", "registry-mirrors"), ("insecure-registry", "insecure-registries"),
                                        ("host", "hosts"), ("label", "labels"), ("log-opt", "log-opts")])
@pytest.mark.parametrize("validate_runs", [False, True])
def test_a_flag_name_used_as_key_is_always_refused(key, right, validate_runs):
    # dockerd accepts these keys (a flag has that name) and then ignores them: --validate says "configuration OK"
    report = schema.validate_config({key: ["x"]}, [key], (26, 1, 5), unknown_keys_checked_elsewhere=validate_runs)
    assert report.errors == ["'%s' is the name of dockerd's command-line flag; in daemon.json it is '%s' (dockerd silently ignores '%s')" % (key, right, key)]


@pytest.mark.parametrize("key, version, fragment", [
    ("proxies", (20, 10, 24), "needs Docker Engine 23.0 or later; this engine is 20.10.24"),
    ("cluster-store", (26, 1, 5), "was removed in Docker Engine 23.0"),
])
def test_keys_the_engine_version_does_not_have(key, version, fragment):
    value = {"http-proxy": "http://p.example:3128"} if key == "proxies" else "consul://c.example:8500"
    report = schema.validate_config({key: value}, [key], version)
    assert [fragment in error for error in report.errors] == [True]


def test_unknown_version_does_not_refuse_version_bound_keys():
    assert schema.validate_config({"proxies": {"http-proxy": "http://p.example:3128"}}, ["proxies"], None).errors == []


def test_graph_and_data_root_together_are_refused():
    report = schema.validate_config({"graph": "/a", "data-root": "/b"}, ["data-root"], (20, 10, 24))
    assert any("'graph' and 'data-root' are both set" in error for error in report.errors)


@pytest.mark.parametrize("text, version", [
    ("20.10.24+dfsg1", (20, 10, 24)),
    ("Docker version 26.1.5+dfsg1, build a72d7cd", (26, 1, 5)),
    ("Docker version 23.0", (23, 0, 0)),
    ("garbage", None),
    ("", None),
    (None, None),
])
def test_parse_version(text, version):
    assert dj.parse_version(text) == version


@pytest.mark.parametrize("version, supported", [((20, 10, 24), False), ((22, 6, 0), False), ((23, 0, 0), True), ((26, 1, 5), True), (None, False)])
def test_proxies_supported(version, supported):
    assert dj.proxies_supported(version) is supported


# --- classification ------------------------------------------------------------------------

@pytest.mark.parametrize("before, after, needs, reload_keys, restart_keys", [
    ({}, {}, "none", [], []),
    ({"a": 1}, {"a": 1}, "none", [], []),
    ({}, {"registry-mirrors": ["https://m.example"]}, "reload", ["registry-mirrors"], []),
    ({"live-restore": False}, {"live-restore": True, "debug": True, "insecure-registries": ["r.example:5000"]}, "reload",
     ["debug", "insecure-registries", "live-restore"], []),
    ({"max-concurrent-downloads": 3, "labels": ["a=b"]}, {"max-concurrent-downloads": 6}, "reload", ["labels", "max-concurrent-downloads"], []),
    ({}, {"registry-mirrors": ["https://m.example"], "proxies": {"http-proxy": "http://p.example:3128"}}, "restart",
     ["registry-mirrors"], ["proxies"]),
    ({"log-opts": {"max-size": "10m"}}, {"log-opts": {"max-size": "20m"}}, "restart", [], ["log-opts"]),
    ({"data-root": "/var/lib/docker"}, {}, "restart", [], ["data-root"]),
    ({}, {"features": {"buildkit": True}}, "restart", [], ["features"]),
])
def test_classify_changes(before, after, needs, reload_keys, restart_keys):
    keys = dj.changed_keys(before, after)
    assert dj.classify(keys) == (needs, {"reload": reload_keys, "restart": restart_keys})


def test_classify_adds_restart_reasons_from_outside_daemon_json():
    assert dj.classify(["registry-mirrors"], extra_restart=["proxies"]) == ("restart", {"reload": ["registry-mirrors"], "restart": ["proxies"]})


# --- proxies and secrets -------------------------------------------------------------------

@pytest.mark.parametrize("option, expected", [
    ({"http": "http://p.example:3128", "https": "http://p.example:3128", "no_proxy": "localhost"},
     {"http-proxy": "http://p.example:3128", "https-proxy": "http://p.example:3128", "no-proxy": "localhost"}),
    ({"http": "http://p.example:3128", "https": None, "no_proxy": ""}, {"http-proxy": "http://p.example:3128"}),
    (None, {}),
])
def test_proxies_from_option(option, expected):
    assert dj.proxies_from_option(option) == expected


@pytest.mark.parametrize("text, masked", [
    ("http://user:s3cret@proxy.example:3128", "http://user:xxxxx@proxy.example:3128"),
    ("http://proxy.example:3128", "http://proxy.example:3128"),
    ("flag --http-proxy http://a:b@p.example and https://c:d@q.example", "flag --http-proxy http://a:xxxxx@p.example and https://c:xxxxx@q.example"),
    # the password is everything between the first ':' after the scheme and the LAST '@'
    ("http://user:p@ss@proxy:3128", "http://user:xxxxx@proxy:3128"),
    ("http://user:p:a@s@s@proxy:3128/", "http://user:xxxxx@proxy:3128/"),
    ("http://user:pa/ss@proxy:3128", "http://user:xxxxx@proxy:3128"),
    ("http://user:p%40ss@proxy:3128", "http://user:xxxxx@proxy:3128"),
    ('{"http-proxy": "http://u:p@ss@proxy:3128", "no-proxy": "a@b"}', '{"http-proxy": "http://u:xxxxx@proxy:3128", "no-proxy": "a@b"}'),
    ("http://user@proxy:3128", "http://user@proxy:3128"),
    (12, 12),
])
def test_mask_url(text, masked):
    assert url_secrets.mask_url(text) == masked


def test_mask_credentials_walks_nested_values_without_changing_the_input():
    config = {"proxies": {"http-proxy": "http://u:pw@p.example"}, "hosts": ["unix:///x"], "mtu": 1400}
    assert url_secrets.mask_credentials(config) == {"proxies": {"http-proxy": "http://u:xxxxx@p.example"}, "hosts": ["unix:///x"], "mtu": 1400}
    assert config["proxies"]["http-proxy"] == "http://u:pw@p.example"


@pytest.mark.parametrize("url, password", [
    ("http://user:s3cret@proxy.example:3128", "s3cret"),
    ("http://user:@proxy.example", None),
    ("http://user:p@ss@proxy:3128", "p@ss"),
    ("http://user:p:a/ss@proxy:3128", "p:a/ss"),
    ("http://user:p%40ss@proxy:3128", "p%40ss"),
    ("http://proxy.example:3128", None),
    ("", None),
    (None, None),
])
def test_url_password(url, password):
    assert url_secrets.url_password(url) == password


def test_passwords_in_finds_raw_and_decoded_passwords_anywhere():
    found = url_secrets.passwords_in({"proxies": {"http-proxy": "http://u:p%40ss@x:1"}, "l": ["https://v:a@b@y"], "n": 3})
    assert found == {"p%40ss", "p@ss", "a@b"}
    assert url_secrets.passwords_in('Environment="HTTP_PROXY=http://u:s:e@c@p:3128"') == {"s:e@c"}


def test_hide_secrets_replaces_known_secrets_even_outside_urls():
    assert url_secrets.hide_secrets('it holds the string "p@ss" and http://u:p@ss@h', {"p@ss"}) == 'it holds the string "xxxxx" and http://u:xxxxx@h'
