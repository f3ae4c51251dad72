"""registry_api's one HTTP client: TLS always verified (chain with tls_ca, or the trust store), never the environment's CA."""

from __future__ import annotations

import http.server
import ssl
import threading

import pytest
import requests
import trustme

from ansible_collections.fleet.images.plugins.module_utils.registry_api import api_session, is_certificate_error, probe


class V2Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/v2/" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """https://127.0.0.1:PORT with a certificate for registry.example only (as a registry probed on loopback)."""
    directory = tmp_path_factory.mktemp("fc-api")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other.pem"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), V2Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("registry.example").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "https://127.0.0.1:%d" % server.server_address[1], str(directory / "ca.pem"), str(directory / "other.pem")
    server.shutdown()


def test_the_probe_checks_the_chain_but_not_the_loopback_name(registry):
    url, ca, _other = registry
    assert probe(api_session(ca, retries=False, check_hostname=False), url) == 200


def test_api_calls_check_the_host_name(registry):
    url, ca, _other = registry
    with pytest.raises(requests.exceptions.SSLError):
        probe(api_session(ca, retries=False), url)


def test_a_certificate_another_ca_signed_is_refused(registry):
    url, _ca, other = registry
    with pytest.raises(requests.exceptions.SSLError) as refused:
        probe(api_session(other, retries=False, check_hostname=False), url)
    assert is_certificate_error(refused.value)


def test_without_a_ca_the_trust_store_decides_not_the_environment(registry, monkeypatch):
    url, ca, _other = registry
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    monkeypatch.setenv("CURL_CA_BUNDLE", ca)
    with pytest.raises(requests.exceptions.SSLError) as refused:
        probe(api_session(None, retries=False, check_hostname=False), url)
    assert is_certificate_error(refused.value)
