"""The connection layer against the real local engine, and against addresses where none answers."""

from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest
import trustme

from ports import free_port

from ansible_collections.fleet.images.plugins.module_utils.docker_client import DockerConnectionError, build_client


def test_connects_to_the_local_engine():
    client = build_client({"docker_host": "unix:///var/run/docker.sock", "timeout": 10})
    assert client.version()["ApiVersion"]


def test_pinned_api_version_is_used():
    client = build_client({"docker_host": "unix:///var/run/docker.sock", "api_version": "1.40", "timeout": 10})
    assert client.api.api_version == "1.40"


def test_missing_socket_says_dockerd_is_not_running(tmp_path):
    host = "unix://%s" % (tmp_path / "docker.sock")
    with pytest.raises(DockerConnectionError, match="the socket does not exist. Is dockerd running") as error:
        build_client({"docker_host": host, "timeout": 5})
    assert host in str(error.value)


def test_closed_tcp_port_says_connection_refused():
    host = "tcp://127.0.0.1:%d" % free_port()
    with pytest.raises(DockerConnectionError, match="connection refused") as error:
        build_client({"docker_host": host, "timeout": 5})
    assert host in str(error.value)


# --- engine TLS: a TLS endpoint in front of the local engine's socket ------------------------------

def _pump(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def splice_to_engine(client):
    """Relay `client` (a connected socket) to the local engine's socket, both ways, in two threads."""
    engine = socket.socket(socket.AF_UNIX)
    engine.connect("/var/run/docker.sock")
    for source, target in ((client, engine), (engine, client)):
        threading.Thread(target=_pump, args=(source, target), daemon=True).start()


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory):
    """https://127.0.0.1:PORT serving the local engine's API with a certificate from a test CA;
    returns (docker_host, the right CA's path, a wrong CA's path)."""
    directory = tmp_path_factory.mktemp("fi-dmn-tls")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other-ca.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                raw, dummy = listener.accept()
            except OSError:
                return
            try:
                client = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            splice_to_engine(client)

    threading.Thread(target=serve, daemon=True).start()
    yield "tcp://127.0.0.1:%d" % listener.getsockname()[1], str(directory / "ca.pem"), str(directory / "other-ca.pem")
    stop.set()
    listener.close()


@pytest.mark.parametrize("bundle", ["unset", "wrong CA"])
def test_tls_with_ca_path_verifies_the_engine_with_it(tls_engine, monkeypatch, bundle):
    docker_host, right_ca, wrong_ca = tls_engine
    # requests lets these replace a session's CA: ca_path must win over them
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if bundle == "unset":
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, wrong_ca)
    client = build_client({"docker_host": docker_host, "tls": True, "ca_path": right_ca, "timeout": 10})
    assert client.version()["ApiVersion"]
    assert client.api.verify == right_ca


def test_tls_with_a_wrong_ca_is_refused_although_validate_certs_is_not_given(tls_engine):
    docker_host, dummy, wrong_ca = tls_engine
    with pytest.raises(DockerConnectionError, match="presented a certificate that ca_path does not verify") as error:
        build_client({"docker_host": docker_host, "tls": True, "ca_path": wrong_ca, "timeout": 10})
    assert docker_host in str(error.value)


def test_ca_path_with_validate_certs_false_is_refused_rather_than_ignored(tls_engine):
    docker_host, dummy, wrong_ca = tls_engine
    with pytest.raises(DockerConnectionError, match="validate_certs=false turns verification of the engine's certificate off"):
        build_client({"docker_host": docker_host, "tls": True, "ca_path": wrong_ca, "validate_certs": False, "timeout": 10})
    assert os.path.exists(wrong_ca)
