"""registry_pki (action plugin + the registry_pki module on the host) and registry_trust, on this machine's files.

The action runs through ansible-playbook with the local connection, so the host side really runs
as a module; the PKI directory is a temporary one.
"""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509

from ansible_collections.fleet.images.plugins.module_utils import pki, registry_host
from module_runner import run_module, run_task


def run_pki(tmp_path, check_mode=False, **options):
    args = dict(path=str(tmp_path / "config" / "pki"), common_name="registry1", dns_names=["registry1"],
                host_dns_names=False, host_ip_address=False)
    args.update(options)
    return run_task(tmp_path, "registry_pki", args, check_mode=check_mode)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_first_run_makes_the_pki_then_reruns_change_nothing(tmp_path):
    pki = tmp_path / "config" / "pki"
    first, output = run_pki(tmp_path, ip_addresses=["10.1.2.3"])
    assert first["changed"] and sorted(first["written"]) == ["ca.crt", "ca.key", "server.crt", "server.key"]
    assert first["subject_alt_names"] == ["DNS:registry1", "IP:10.1.2.3"]
    assert mode_of(pki) == 0o700 and mode_of(pki.parent) == 0o755
    assert {name: mode_of(pki / name) for name in os.listdir(pki)} == {"ca.key": 0o600, "server.key": 0o600, "ca.crt": 0o644, "server.crt": 0o644}
    assert first["ca_cert"] == (pki / "ca.crt").read_text()
    # No key leaves the action: not in the result, not in the output.
    assert "PRIVATE KEY" not in output
    before = {name: (pki / name).read_bytes() for name in os.listdir(pki)}
    again, _output = run_pki(tmp_path, ip_addresses=["10.1.2.3"])
    assert not again["changed"] and again["written"] == [] and again["reasons"] == {}
    assert {name: (pki / name).read_bytes() for name in os.listdir(pki)} == before


def test_a_new_name_rewrites_only_the_server_certificate_and_check_mode_writes_nothing(tmp_path):
    run_pki(tmp_path)
    pki = tmp_path / "config" / "pki"
    before = {name: (pki / name).read_bytes() for name in os.listdir(pki)}
    predicted, _output = run_pki(tmp_path, check_mode=True, dns_names=["registry1", "registry1.example"])
    assert predicted["changed"] and predicted["written"] == ["server.crt"]
    assert {name: (pki / name).read_bytes() for name in os.listdir(pki)} == before
    changed, _output = run_pki(tmp_path, dns_names=["registry1", "registry1.example"])
    assert changed["written"] == ["server.crt"] and "lacks DNS:registry1.example" in changed["reasons"]["server.crt"]
    names = x509.load_pem_x509_certificate((pki / "server.crt").read_bytes()).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == ["registry1", "registry1.example"]
    assert all((pki / name).read_bytes() == before[name] for name in ("ca.key", "ca.crt", "server.key"))


def test_a_wrong_mode_is_corrected_without_a_new_key(tmp_path):
    run_pki(tmp_path)
    key = tmp_path / "config" / "pki" / "server.key"
    text = key.read_bytes()
    os.chmod(key, 0o644)
    fixed, _output = run_pki(tmp_path)
    assert fixed["written"] == ["server.key"] and mode_of(key) == 0o600 and key.read_bytes() == text


def test_the_host_names_are_added_when_asked(tmp_path):
    result, _output = run_pki(tmp_path, host_dns_names=True, host_ip_address=True)
    names = registry_host.own_names()
    expected = pki.subject_alt_names(["registry1", names["fqdn"], names["hostname"]], [names["default_ipv4"]])
    assert result["subject_alt_names"] == expected and len(expected) > 1


def test_a_bad_address_fails_with_the_option_named_and_writes_nothing(tmp_path):
    result, _output = run_pki(tmp_path, ip_addresses=["registry1"])
    assert result["failed"] and "'registry1' is not an IP address" in result["msg"]
    assert os.listdir(tmp_path / "config" / "pki") == []


def test_docker_trust_writes_the_ca_once_in_the_same_runs(tmp_path):
    certs_d = tmp_path / "certs.d"
    options = dict(docker_trust="registry1:5000", certs_d=str(certs_d))
    predicted, _output = run_pki(tmp_path, check_mode=True, **options)
    assert predicted["trusted"] and not certs_d.exists()
    first, _output = run_pki(tmp_path, **options)
    trusted = certs_d / "registry1:5000" / "ca.crt"
    assert first["trusted"] and trusted.read_text() == first["ca_cert"] == (tmp_path / "config" / "pki" / "ca.crt").read_text()
    assert mode_of(trusted) == 0o644 and "ca.crt" in first["written"]
    again, _output = run_pki(tmp_path, **options)
    assert not again["changed"] and not again["trusted"]
    trusted.write_text("stale\n")
    fixed, _output = run_pki(tmp_path, **options)
    assert fixed["changed"] and fixed["trusted"] and fixed["written"] == [] and trusted.read_text() == first["ca_cert"]
    bad, _output = run_pki(tmp_path, docker_trust="https://registry1:5000/", certs_d=str(certs_d))
    assert bad["failed"] and "docker_trust" in bad["msg"] and "is not HOST:PORT" in bad["msg"]


@pytest.fixture()
def ca_pem(tmp_path):
    run_pki(tmp_path)
    return (tmp_path / "config" / "pki" / "ca.crt").read_text()


def test_registry_trust_writes_the_ca_once_where_docker_reads_it(tmp_path, ca_pem):
    certs_d = tmp_path / "certs.d"
    store = tmp_path / "ca-certificates" / "site.crt"
    (store.parent).mkdir()
    params = dict(registry="registry1:5000", ca_cert=ca_pem, certs_d=str(certs_d), system_store_path=str(store))
    assert run_module("registry_trust", params, check_mode=True)["changed"] and not certs_d.exists()
    first = run_module("registry_trust", params)
    assert first["changed"] and first["docker_changed"] and first["system_store_changed"]
    assert (certs_d / "registry1:5000" / "ca.crt").read_text() == ca_pem == store.read_text()
    assert mode_of(certs_d / "registry1:5000" / "ca.crt") == 0o644 and mode_of(certs_d / "registry1:5000") == 0o755
    assert not run_module("registry_trust", params)["changed"]
    gone = run_module("registry_trust", dict(params, state="absent", ca_cert=None))
    assert gone["changed"] and not (certs_d / "registry1:5000").exists() and not store.exists()


def test_registry_trust_refuses_what_is_not_a_certificate_or_an_address(tmp_path, ca_pem):
    certs_d = tmp_path / "certs.d"
    not_a_certificate = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
    bad = run_module("registry_trust", dict(registry="registry1:5000", ca_cert=not_a_certificate, certs_d=str(certs_d)))
    assert bad["failed"] and "is not a PEM certificate" in bad["msg"] and not certs_d.exists()
    wrong = run_module("registry_trust", dict(registry="https://registry1:5000/", ca_cert=ca_pem, certs_d=str(certs_d)))
    assert wrong["failed"] and "is not HOST:PORT" in wrong["msg"]
