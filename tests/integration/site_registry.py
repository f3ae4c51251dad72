"""A TLS registry with one user, run by registry_deploy on a loopback port (image_push and bundle_push tests).

Import the fixture into a test module: ``from site_registry import USER, site_registry``.
"""

from __future__ import annotations

import uuid

import pytest
import trustme

from ports import free_port

SOCKET = "unix:///var/run/docker.sock"
USER = ("pusher", "push-password-1")


@pytest.fixture(scope="module")
def site_registry(engine, module_runner, tmp_path_factory):
    """One TLS registry with a user for the whole test module."""
    directory = tmp_path_factory.mktemp("push-registry")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    paths = {name: str(directory / name) for name in ("ca.crt", "server.crt", "server.key")}
    ca.cert_pem.write_to_path(paths["ca.crt"])
    server.cert_chain_pems[0].write_to_path(paths["server.crt"])
    server.private_key_pem.write_to_path(paths["server.key"])
    params = dict(
        docker_host=SOCKET, name="itest-registry-%s" % uuid.uuid4().hex[:8], port=free_port(), bind_address="127.0.0.1",
        data_dir=str(directory / "data"), htpasswd_path=str(directory / "auth" / "htpasswd"),
        tls_cert=paths["server.crt"], tls_key=paths["server.key"], tls_ca=paths["ca.crt"],
        users=[{"name": USER[0], "password": USER[1]}],
    )
    result = module_runner("registry_deploy", params)
    assert not result["failed"], result
    yield {"registry": "127.0.0.1:%d" % params["port"], "ca": paths["ca.crt"], "port": params["port"]}
    engine.containers.get(params["name"]).remove(force=True, v=True)
