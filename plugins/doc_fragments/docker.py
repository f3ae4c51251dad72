# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every module that talks to a Docker Engine.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker Engine to talk to, as a URL.
      - V(unix:///path/to/docker.sock) for a local socket, V(tcp://host:2376) for a remote engine.
      - If not set, the value of the E(DOCKER_HOST) environment variable is used, and if that is not set either,
        V(unix:///var/run/docker.sock).
    type: str
    aliases: [docker_url]
  tls:
    description:
      - Connect over TLS. Implied by O(validate_certs=true).
      - Without O(ca_path) (and without O(validate_certs=true)) the connection is encrypted but the engine's certificate
        is not verified.
      - If not set, the value of the E(DOCKER_TLS) environment variable is used.
    type: bool
    default: false
  validate_certs:
    description:
      - Connect over TLS and verify the engine's certificate against O(ca_path).
      - If not set, the value of the E(DOCKER_TLS_VERIFY) environment variable is used; if that is not set either,
        the engine is verified whenever O(tls=true) and O(ca_path) is given.
      - V(false) together with O(tls=true) and O(ca_path) is refused, rather than ignoring the CA.
    type: bool
    aliases: [tls_verify]
  ca_path:
    description:
      - CA certificate (PEM) used to verify the engine's certificate. With O(tls=true) it is always used, and a certificate it did not sign is refused.
    type: path
    aliases: [ca_cert, tls_ca_cert]
  client_cert:
    description:
      - Client certificate (PEM) presented to the engine.
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - Private key (PEM) of O(client_cert).
    type: path
    aliases: [tls_client_key, key_path]
  api_version:
    description:
      - Docker Engine API version to use, such as V(1.41).
      - V(auto) asks the engine and uses the highest version both sides support.
      - If not set, the value of the E(DOCKER_API_VERSION) environment variable is used.
    type: str
    default: auto
    aliases: [docker_api_version]
  timeout:
    description:
      - Seconds to wait for an answer to a single API request.
      - Long transfers (save, load, push) are streamed and are not bounded by this value.
      - If not set, the value of the E(DOCKER_TIMEOUT) environment variable is used.
    type: int
    default: 60
requirements:
  - Docker SDK for Python >= 5.0 (L(docker,https://pypi.org/project/docker/), Debian's C(python3-docker))
  - requests
notes:
  - The options above form the C(fleet.images.docker) action group, so a play can set them once with
    C(module_defaults) and C(group/fleet.images.docker).
"""

    # The action group marker community tooling looks for.
    ACTIONGROUP_DOCKER = r"""
attributes:
  action_group:
    description: Use C(group/fleet.images.docker) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - fleet.images.docker
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation
        indicates no change.
"""
