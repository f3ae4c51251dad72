"""The registry host's side of the PKI (module_utils/registry_host.py), on real files."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.fleet.images.plugins.module_utils import registry_host

ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t0010A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t00000000\t010011AC\t0003\t0\t0\t200\t00000000\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
lo\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0
down0\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0
"""


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_route_interfaces_come_first_by_metric_then_the_others():
    assert registry_host.route_interfaces(ROUTES) == ["wlan0", "eth0", "eth1"]


def test_an_internal_network_without_default_route_still_gives_its_interface():
    assert registry_host.route_interfaces(ROUTES.splitlines()[0] + "\n" + ROUTES.splitlines()[1]) == ["eth1"]


def test_the_address_of_an_interface_is_read_from_the_kernel():
    assert registry_host._interface_ipv4("lo") == "127.0.0.1"
    assert registry_host._interface_ipv4("no-such-if0") == ""


def test_no_route_table_means_no_address(tmp_path):
    assert registry_host.default_ipv4(str(tmp_path / "missing")) == ""
    table = tmp_path / "route"
    table.write_text(ROUTES.replace("eth0", "nosuch0").replace("wlan0", "nosuch1").replace("eth1", "nosuch2"))
    assert registry_host.default_ipv4(str(table)) == ""


def test_ensure_directory_makes_parents_and_sets_the_mode(tmp_path):
    target = tmp_path / "etc" / "registry" / "pki"
    assert registry_host.ensure_directory(str(target), 0o700, check_mode=True)
    assert not target.parent.exists()
    assert registry_host.ensure_directory(str(target), 0o700)
    assert mode_of(target) == 0o700 and mode_of(target.parent) == 0o755
    assert not registry_host.ensure_directory(str(target), 0o700)
    os.chmod(target, 0o755)
    assert registry_host.ensure_directory(str(target), 0o700) and mode_of(target) == 0o700


def test_ensure_directory_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "pki").write_text("x")
    with pytest.raises(OSError, match="is not a directory"):
        registry_host.ensure_directory(str(tmp_path / "pki"), 0o700)


def test_files_are_written_atomically_once_and_read_back_with_their_mode(tmp_path):
    path = str(tmp_path / "server.key")
    assert registry_host.read_file(path) is None
    assert registry_host.write_file(path, "secret\n", 0o600)
    assert registry_host.read_file(path) == {"content": "secret\n", "mode": "0600"}
    assert not registry_host.write_file(path, "secret\n", 0o600)
    os.chmod(path, 0o644)
    assert registry_host.write_file(path, "secret\n", 0o600) and mode_of(path) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["server.key"]


def test_pem_certificates_are_told_from_other_text():
    body = "MIIBszCCAVmgAwIBAgIU\nAAAA\n"
    assert registry_host.looks_like_pem_certificate("-----BEGIN CERTIFICATE-----\n%s-----END CERTIFICATE-----\n" % body)
    assert not registry_host.looks_like_pem_certificate("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----")
    assert not registry_host.looks_like_pem_certificate("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
    assert not registry_host.looks_like_pem_certificate("")


CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2E=\n-----END CERTIFICATE-----\n"


def test_untrusting_removes_the_certs_d_directory_but_never_the_system_store_directory(tmp_path):
    certs_d, store = tmp_path / "certs.d", tmp_path / "ca-certificates" / "site.crt"
    store.parent.mkdir()
    trusted = registry_host.trust_registry("registry1:5000", CA, str(certs_d), str(store))
    assert trusted["changed"] and (certs_d / "registry1:5000" / "ca.crt").read_text() == CA == store.read_text()
    gone = registry_host.trust_registry("registry1:5000", None, str(certs_d), str(store), present=False)
    assert gone == dict(path=str(certs_d / "registry1:5000" / "ca.crt"), docker_changed=True, system_store_changed=True, changed=True)
    assert not (certs_d / "registry1:5000").exists() and not store.exists()
    assert store.parent.is_dir() and certs_d.is_dir()


def test_the_pki_host_side_refuses_a_file_outside_the_pki(tmp_path):
    params = dict(path=str(tmp_path / "pki"), docker_trust="", certs_d=str(tmp_path / "certs.d"), host_dns_names=False,
                  host_ip_address=False, _write={"../evil": "x"}, _trust_ca=None)
    with pytest.raises(ValueError, match="is not a file of the registry's PKI"):
        registry_host.pki_host_side(params, False)
    assert os.listdir(tmp_path / "pki") == []
