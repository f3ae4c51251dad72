"""registry_engine's checks that need no engine: key/certificate pairs, addresses, file writes."""

from __future__ import annotations

import os
import stat

import pytest
import trustme

from ansible_collections.fleet.images.plugins.module_utils.atomic_file import atomic_write
from ansible_collections.fleet.images.plugins.module_utils.registry_container import (
    RegistryDeployError,
    addresses_overlap,
    engine_probe_host,
    is_local_engine,
    published_ports,
)
from ansible_collections.fleet.images.plugins.module_utils.registry_engine import check_tls_pair


@pytest.fixture
def pair(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("registry.example")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    other = tmp_path / "other.key"
    ca.issue_cert("other.example").private_key_pem.write_to_path(str(other))
    return str(cert), str(key), str(other)


def test_a_matching_pair_passes(pair):
    warnings = []
    check_tls_pair(pair[0], pair[1], warnings)
    assert warnings == []


def test_a_key_of_another_certificate_is_named(pair):
    with pytest.raises(RegistryDeployError, match="tls_key %s does not match the certificate tls_cert %s" % (pair[2], pair[0])):
        check_tls_pair(pair[0], pair[2], [])


@pytest.mark.parametrize("which", ["cert", "key"])
def test_a_missing_file_is_named(pair, which):
    cert, key = (pair[0] + ".gone", pair[1]) if which == "cert" else (pair[0], pair[1] + ".gone")
    missing = cert if which == "cert" else key
    with pytest.raises(RegistryDeployError, match="tls_%s %s does not exist" % (which, missing)):
        check_tls_pair(cert, key, [])


def test_no_path_given_says_which_option(pair):
    with pytest.raises(RegistryDeployError, match="registry_tls=true needs tls_key"):
        check_tls_pair(pair[0], None, [])


def test_garbage_is_not_a_pair(pair, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(RegistryDeployError, match="cannot be used as a TLS server pair"):
        check_tls_pair(str(garbage), pair[1], [])


@pytest.mark.parametrize(
    "docker_host, bind, expected",
    [
        (None, "0.0.0.0", "127.0.0.1"),
        ("unix:///var/run/docker.sock", "0.0.0.0", "127.0.0.1"),
        ("unix:///var/run/docker.sock", "10.0.0.5", "10.0.0.5"),
        ("tcp://reg.example:2376", "0.0.0.0", "reg.example"),
        ("ssh://root@reg.example", "::", "reg.example"),
        ("tcp://reg.example:2376", "10.0.0.5", "10.0.0.5"),
    ],
)
def test_where_the_module_probes(docker_host, bind, expected):
    assert engine_probe_host(docker_host, bind) == expected


def test_only_unix_sockets_count_as_local_engines():
    assert is_local_engine(None) and is_local_engine("unix:///run/docker.sock")
    assert not is_local_engine("tcp://10.0.0.5:2376")


@pytest.mark.parametrize(
    "first, second, overlap",
    [("0.0.0.0", "127.0.0.1", True), ("", "10.0.0.5", True), ("127.0.0.1", "127.0.0.1", True), ("127.0.0.1", "10.0.0.5", False)],
)
def test_address_overlap(first, second, overlap):
    assert addresses_overlap(first, second) is overlap


class InspectedContainer:
    """What containers.get() hands back, reduced to the inspect data published_ports reads."""

    def __init__(self, bindings):
        self.attrs = {"HostConfig": {"PortBindings": bindings}}


def test_published_ports_from_inspect_data():
    container = InspectedContainer({"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "15000"}], "80/tcp": None,
                                    "443/tcp": [{"HostIp": "", "HostPort": ""}]})
    assert published_ports(container) == [("127.0.0.1", 15000)]
    assert published_ports(InspectedContainer(None)) == []


def test_atomic_write_sets_the_mode_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "htpasswd"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    atomic_write(str(target), b"ci:$2b$08$x\n", 0o600)
    assert target.read_text() == "ci:$2b$08$x\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["htpasswd"]


def test_an_expired_certificate_is_warned_about(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=30)).not_valid_after(now - datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "expired.crt", tmp_path / "expired.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    warnings = []
    check_tls_pair(str(cert_path), str(key_path), warnings)
    assert len(warnings) == 1 and "tls_cert %s expired on" % cert_path in warnings[0]
