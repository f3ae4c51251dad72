# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection options every engine-facing module shares, without importing the Docker SDK.

A module that may finish without talking to the engine (daemon_config with nothing to change)
declares its options from here and imports docker_client only when it connects: importing the
SDK is a fifth of a second on a small host, paid on every host of every rerun.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

DOCKER_CONNECTION_ARGS = dict(
    docker_host=dict(type="str", aliases=["docker_url"], fallback=(env_fallback, ["DOCKER_HOST"])),
    tls=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS"])),
    validate_certs=dict(type="bool", aliases=["tls_verify"], fallback=(env_fallback, ["DOCKER_TLS_VERIFY"])),
    ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert"]),
    client_cert=dict(type="path", aliases=["tls_client_cert", "cert_path"]),
    client_key=dict(type="path", aliases=["tls_client_key", "key_path"], no_log=False),
    api_version=dict(type="str", default="auto", aliases=["docker_api_version"], fallback=(env_fallback, ["DOCKER_API_VERSION"])),
    timeout=dict(type="int", default=60, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
)


def docker_connection_args(**module_args):
    """Return an argument_spec holding the shared connection options plus a module's own."""
    spec = dict(DOCKER_CONNECTION_ARGS)
    spec.update(module_args)
    return spec
