"""The registry PKI decisions (module_utils/pki.py), with real keys and certificates."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ansible_collections.fleet.images.plugins.module_utils import pki

NAMES = ["DNS:registry1", "DNS:registry1.site.example", "IP:10.0.0.5"]
NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)


def plan(current=None, names=None, renew_days=30, now=NOW, ca_name="site CA"):
    return pki.plan_pki(current or {}, ca_name, "registry1", NAMES if names is None else names, 3650, 365, renew_days, now=now)


def cert(text):
    return x509.load_pem_x509_certificate(text.encode())


@pytest.fixture(scope="module")
def first():
    return plan()


def test_subject_alt_names_keep_order_drop_repeats_localhost_and_blanks():
    names = pki.subject_alt_names(["registry1", "localhost", "", "registry1", "r.example"], ["10.0.0.5", "", "10.0.0.5", "fd00::0001"])
    assert names == ["DNS:registry1", "DNS:r.example", "IP:10.0.0.5", "IP:fd00::1"]


def test_a_name_given_as_an_ip_address_is_refused_by_name():
    with pytest.raises(pki.PkiError, match="'registry1' is not an IP address"):
        pki.subject_alt_names([], ["registry1"])


def test_a_certificate_needs_a_name():
    with pytest.raises(pki.PkiError, match="at least one name"):
        plan(names=[])


def test_a_first_run_makes_all_four_files(first):
    assert first["reasons"] == {name: "missing" for name in ("ca.key", "ca.crt", "server.key", "server.crt")}
    for name in ("ca.key", "server.key"):
        key = serialization.load_pem_private_key(first["files"][name].encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert all(text.endswith("-----\n") for text in first["files"].values())


def test_the_ca_is_a_ca_and_signs_the_server_certificate_for_every_name(first):
    ca, server = cert(first["files"]["ca.crt"]), cert(first["files"]["server.crt"])
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["registry1", "registry1.site.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # Valid from a little before now (clock skew), for cert_valid_days.
    assert server.not_valid_before_utc < NOW and server.not_valid_after_utc == NOW + datetime.timedelta(days=365)
    assert first["server_not_after"] == server.not_valid_after_utc


def test_a_second_run_keeps_every_file_as_it_is(first):
    again = plan(first["files"])
    assert again["reasons"] == {} and again["files"] == first["files"]


def test_a_kept_file_is_stored_with_one_final_newline(first):
    current = dict(first["files"], **{"ca.crt": "\n" + first["files"]["ca.crt"].strip()})
    assert plan(current)["files"]["ca.crt"] == first["files"]["ca.crt"]


def test_a_new_name_reissues_only_the_server_certificate(first):
    changed = plan(first["files"], names=NAMES + ["DNS:registry-alias.example"])
    assert changed["reasons"] == {"server.crt": "its names changed: it lacks DNS:registry-alias.example"}
    assert {name for name in first["files"] if changed["files"][name] != first["files"][name]} == {"server.crt"}


def test_a_dropped_name_reissues_it_too(first):
    assert "has IP:10.0.0.5 no longer wanted" in plan(first["files"], names=NAMES[:2])["reasons"]["server.crt"]


def test_a_certificate_within_the_renewal_window_is_renewed_and_the_ca_kept(first):
    renewed = plan(first["files"], renew_days=400)
    assert list(renewed["reasons"]) == ["server.crt"] and "within the renewal window" in renewed["reasons"]["server.crt"]
    assert renewed["files"]["ca.crt"] == first["files"]["ca.crt"]
    assert plan(renewed["files"])["reasons"] == {}


def test_an_expiring_ca_is_renewed_with_its_key_and_the_server_certificate_still_verifies(first):
    later = plan(first["files"], now=NOW + datetime.timedelta(days=3640))
    assert "ca.crt" in later["reasons"] and "ca.key" not in later["reasons"]
    # Same key and name: the old server certificate (long expired by then) is renewed for its own date.
    assert "already expired" in later["reasons"]["server.crt"]


def test_an_already_expired_certificate_is_not_said_to_be_within_the_renewal_window(first):
    expired = plan(first["files"], now=NOW + datetime.timedelta(days=400))
    reason = expired["reasons"]["server.crt"]
    assert reason.startswith("it expired on ") and "already expired" in reason, reason
    assert "within the renewal window" not in reason.replace("not merely within the renewal window", "")
    soon = plan(first["files"], now=NOW + datetime.timedelta(days=360))
    assert soon["reasons"]["server.crt"].startswith("it expires on ") and "within the renewal window" in soon["reasons"]["server.crt"]


def test_a_broken_ca_key_brings_a_new_ca_and_server_certificate_but_keeps_the_server_key(first):
    broken = plan(dict(first["files"], **{"ca.key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"}))
    assert broken["reasons"]["ca.key"].startswith("unreadable as an unencrypted PEM private key")
    assert broken["reasons"]["ca.crt"] == "does not belong to the CA key"
    assert broken["reasons"]["server.crt"] == "it was not signed by the CA key"
    assert broken["files"]["server.key"] == first["files"]["server.key"]


def test_a_key_of_another_kind_is_replaced():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    assert plan({"server.key": text})["reasons"]["server.key"] == "not an EC P-256 key"


def test_a_server_certificate_from_another_ca_is_reissued(first):
    other = plan()
    mixed = dict(first["files"], **{"server.crt": other["files"]["server.crt"]})
    assert plan(mixed)["reasons"] == {"server.crt": "does not belong to the server key"}
    mixed = dict(other["files"], **{"ca.key": first["files"]["ca.key"], "ca.crt": first["files"]["ca.crt"]})
    assert plan(mixed)["reasons"] == {"server.crt": "it was not signed by the CA key"}


def test_a_renamed_ca_is_made_again(first):
    assert plan(first["files"], ca_name="another CA")["reasons"]["ca.crt"] == "its name is 'site CA', not 'another CA'"


def test_garbage_in_a_certificate_file_is_replaced_with_the_reason(first):
    result = plan(dict(first["files"], **{"server.crt": "hello"}))
    assert result["reasons"]["server.crt"].startswith("unreadable as a PEM certificate")
