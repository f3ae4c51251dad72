#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_deploy
short_description: Run a distribution registry container with TLS, bcrypt htpasswd users and persistent storage
version_added: 0.1.0
description:
  - Runs (or updates, restarts, removes) a L(distribution,https://distribution.github.io/distribution/) registry
    container from an image that is already on the host (V(registry:2) by default; V(registry:3) takes the same
    configuration). The module never pulls; inside a site the image comes from the bundle with M(fleet.images.image_load).
  - Serves TLS by default; plain HTTP only with O(registry_tls=false). Users are written to a bcrypt htpasswd file (the only
    scheme the registry accepts); a user whose password did not change keeps its existing hash.
  - The bcrypt hashing runs on the controller (the action plugin of the same name reads the htpasswd file in a first,
    short module run, and the Python package C(bcrypt) of the controller hashes), so the registry host needs no Python
    package for it. With O(users) empty, or O(state=absent), there is only one module run.
  - Idempotent by fingerprint. Everything the container runs with (image ID, address and port, mounts, environment,
    restart policy, and the sha256 of the certificate, key and htpasswd B(contents)) is recorded in a label on the
    container. The container is recreated only when that fingerprint differs, so a certificate renewed in place or a
    changed password recreates it once, and the next run changes nothing.
  - Before touching a running registry, it checks the certificate and key files (present, PEM, a matching pair), the
    users, the image (present on the host) and the port (free, or held by this registry). A bad input fails the task
    and leaves the running registry as it was.
  - After (re)starting, waits until C(/v2/) answers (HTTP 401 with users, 200 without) and otherwise fails with the
    container's last log lines.
  - The whole registry configuration (the module's settings and O(config)) is rendered into O(config_path), a root-only
    file (mode 0600) mounted read-only and given to C(registry serve); the image's own C(config.yml) is not used. No
    setting is put into the container's environment or labels, so secrets in O(config) (C(http.secret), storage keys)
    are not readable with C(docker inspect); the recorded inputs hold only digests of them.
  - A redeploy keeps the running registry serving until the new one answers. With a local engine the new settings are
    first tried in a candidate container (C(<name>-candidate), on an ephemeral loopback port); only when it answers is
    the running registry stopped and parked as C(<name>-previous), and the new one started. When the new one does not
    answer within O(wait_timeout), it is removed, the files written in this run get their old content back and the
    parked registry is renamed back and started. A run interrupted half way is finished by the next one (a leftover
    candidate is removed, a parked registry renamed back).
  - O(data_dir) is bind-mounted at C(/var/lib/registry) and survives recreation and O(state=absent).
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
attributes:
  action:
    description: An action plugin on the controller hashes the passwords, then runs this module on the host.
    support: full
  check_mode:
    support: full
    details: Runs every check and reports whether the container would be created, recreated, started or removed,
      and which inputs changed; writes no file and touches no container.
  diff_mode:
    support: full
    details: Shows the recorded inputs before and after. Files and configuration values appear as sha256 digests,
      never as content; users by name only.
  idempotent:
    support: full
    details: O(state=restarted) restarts the container on every run.
options:
  name:
    description:
      - Name of the registry container. Also names the default O(data_dir) and O(htpasswd_path).
    type: str
    default: registry
  image:
    description:
      - Registry image, already present in the engine (load it with M(fleet.images.image_load)).
    type: str
    default: registry:2
  state:
    description:
      - V(present) runs the registry, recreating it only when its inputs changed.
      - V(restarted) does the same and restarts it when it was not (re)created in this run.
      - V(absent) removes the container. O(data_dir), the certificates and the htpasswd file are kept.
    type: str
    choices: [present, absent, restarted]
    default: present
  port:
    description:
      - Host port the registry is published on.
    type: int
    default: 5000
  bind_address:
    description:
      - Host address the port is published on. V(0.0.0.0) means every IPv4 address.
    type: str
    default: 0.0.0.0
  data_dir:
    description:
      - Host directory holding the registry's storage, mounted at C(/var/lib/registry). Created (mode 0755) when absent.
      - Defaults to C(/var/lib/fleet-images/registry/<name>).
    type: path
  registry_tls:
    description:
      - Serve HTTPS with O(tls_cert) and O(tls_key). V(false) serves plain HTTP, which every client then has to list in
        C(insecure-registries).
      - Only the registry's own HTTPS. O(tls), O(ca_path), O(validate_certs), O(client_cert) and O(client_key) are the
        connection to the Docker Engine (see above), set independently of this one.
    type: bool
    default: true
  tls_cert:
    description:
      - Server certificate (PEM, on the registry host), with any intermediate certificates after it. Mounted read-only.
      - Its subjectAltNames must cover every name and IP clients use; Docker ignores the CN.
      - Required with O(registry_tls=true).
    type: path
  tls_key:
    description:
      - Private key (PEM, on the registry host) of O(tls_cert). Mounted read-only. Required with O(registry_tls=true).
    type: path
  tls_ca:
    description:
      - CA certificate that signed O(tls_cert). The health probe verifies the registry's certificate chain with it,
        or, when it is not given, with the registry host's trust store; a certificate that does not verify fails the task
        at once (a running registry keeps serving). The probe reaches the registry on its own host, so the chain is
        verified, not the name.
    type: path
  users:
    description:
      - Users allowed to push and pull, written as bcrypt entries to O(htpasswd_path) (mode 0600).
      - Users not in the list are removed from the file. An empty list turns authentication off.
      - A password is hashed only when it differs from the stored hash.
      - Refused with O(registry_tls=false) (basic authentication would send passwords in clear) unless O(allow_plain_http_auth=true).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name (no C(:) or whitespace).
        type: str
        required: true
      password:
        description: Password, at most 72 bytes (the bcrypt limit). Never shown in output (no_log).
        type: str
        required: true
  bcrypt_cost:
    description:
      - bcrypt cost of new password hashes (4-14). The registry checks the password on every request, and a pull is
        a dozen requests. Measured per request on a 2-core machine, about 5 ms at cost 5, 18 ms at 8 and 63 ms at 10
        when idle; 30 ms at 8 and 180 ms at 10 under load.
      - Hashes already in the file keep their cost; only new users and changed passwords use this value.
    type: int
    default: 8
  htpasswd_path:
    description:
      - Host path of the htpasswd file, mounted read-only into the container. Its directory is created with mode 0700.
      - Defaults to C(/etc/fleet-images/registry/<name>/htpasswd).
    type: path
  allow_plain_http_auth:
    description:
      - Accept O(users) with O(registry_tls=false). Every client then sends its password in clear text over plain HTTP.
    type: bool
    default: false
  tls_min_version:
    description:
      - Oldest TLS version the registry accepts (C(http.tls.minimumtls)). Set explicitly, not left to the image's default.
    type: str
    choices: ["1.2", "1.3"]
    default: "1.2"
  read_only:
    description:
      - Serve the storage read-only (C(storage.maintenance.readonly)). Pulls work, every push and delete is refused with
        HTTP 405, and no upload purging runs. For a pull endpoint over storage that another registry container (the push
        endpoint) writes to.
    type: bool
    default: false
  config_path:
    description:
      - Host path of the rendered registry configuration (mode 0600, its directory 0700), mounted read-only.
      - Defaults to C(/etc/fleet-images/registry/<name>/config.yml).
    type: path
  delete_enabled:
    description:
      - Allow deleting manifests and blobs through the API (C(storage.delete.enabled)).
    type: bool
    default: false
  restart_policy:
    description:
      - Docker restart policy of the container.
    type: str
    choices: ["no", on-failure, always, unless-stopped]
    default: always
  config:
    description:
      - "Extra registry configuration as a nested dict, merged into the configuration file the module renders:
        C({log: {level: debug}, http: {secret: ...}})."
      - Keys the module sets from its own options (C(http.addr), C(http.tls), C(auth), C(storage.delete),
        C(storage.maintenance.readonly)) are refused. A storage driver given here (for example C(storage.s3)) replaces
        the default C(filesystem) one on O(data_dir).
      - A setting distribution refuses fails the task with the registry's log lines; a running registry keeps serving.
    type: dict
    default: {}
  wait_timeout:
    description:
      - Seconds to wait for C(/v2/) to answer after the container (or the candidate) started.
    type: int
    default: 60
  _read_htpasswd:
    description:
      - Private, set by the action plugin of the same name only (its first run on the host reads the htpasswd file).
        Do not set it.
    type: bool
  _htpasswd:
    description:
      - Private, set by the action plugin of the same name only (the htpasswd file it planned on the controller).
        Do not set it.
    type: dict
requirements:
  - bcrypt (the Python package, on the controller, when O(users) is given)
notes:
  - The port check binds O(bind_address):O(port) itself when the engine is local (a C(unix://) socket), so it also sees
    processes outside Docker; with a remote engine it only looks at the engine's containers.
  - Certificate, key, htpasswd and configuration are mounted as single files. A file replaced by rename keeps the old
    content inside the running container; that is why a changed content recreates the container.
seealso:
  - module: fleet.images.image_load
  - module: fleet.images.image_push
  - module: community.docker.docker_container
author:
  - fleet.images contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Run the site registry with TLS and two users
  fleet.images.registry_deploy:
    tls_cert: /etc/fleet-images/registry/registry/pki/server.crt
    tls_key: /etc/fleet-images/registry/registry/pki/server.key
    tls_ca: /etc/fleet-images/registry/registry/pki/ca.crt
    users:
      - name: ci
        password: "{{ vault_registry_ci_password }}"
      - name: nodes
        password: "{{ vault_registry_nodes_password }}"
  register: registry

- name: A second registry on another port, with deletes allowed and a shared HTTP secret
  fleet.images.registry_deploy:
    name: registry-scratch
    port: 5001
    bind_address: 10.0.0.5
    tls_cert: /etc/pki/scratch.crt
    tls_key: /etc/pki/scratch.key
    delete_enabled: true
    config:
      log:
        level: warn
      http:
        secret: "{{ vault_registry_http_secret }}"

- name: Remove the container (storage and files are kept)
  fleet.images.registry_deploy:
    name: registry-scratch
    state: absent
"""

RETURN = r"""
url:
  description: The URL the module probed the registry at from the registry host.
  returned: when state is present or restarted
  type: str
  sample: https://127.0.0.1:5000
container_id:
  description: ID of the registry container (in check mode, of the current one, or null when it would be created).
  returned: always
  type: str
  sample: 3f5e9a0c1b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f
recreated:
  description: Whether an existing container was replaced because its inputs changed.
  returned: always
  type: bool
  sample: false
action:
  description: What was done (or would be in check mode) to the container.
  returned: when state is present or restarted
  type: str
  choices: [none, create, recreate, start, restart]
  sample: create
changed_inputs:
  description:
    - Which inputs differ from those the current container runs with, for example C(tls_cert), C(htpasswd),
      C(image_id), C(listen), C(env.REGISTRY_LOG_LEVEL); C(container) when there was none.
  returned: always
  type: list
  elements: str
  sample: [htpasswd]
users:
  description: User names added, whose password changed, and removed from the htpasswd file.
  returned: when state is present or restarted
  type: dict
  contains:
    added:
      description: Users the htpasswd file did not have.
      type: list
      elements: str
      sample: []
    password_changed:
      description: Users whose password changed (their hash was made again).
      type: list
      elements: str
      sample: [ci]
    removed:
      description: Users no longer in O(users), removed from the file.
      type: list
      elements: str
      sample: []
  sample: {"added": [], "password_changed": ["ci"], "removed": []}
status:
  description: HTTP status of C(/v2/) once the registry answered (401 with users, 200 without).
  returned: when the container was created, recreated, started or restarted
  type: int
  sample: 401
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.registry_engine import run_module

ARGUMENT_SPEC = docker_connection_args(
    name=dict(type="str", default="registry"),
    image=dict(type="str", default="registry:2"),
    state=dict(type="str", choices=["present", "absent", "restarted"], default="present"),
    port=dict(type="int", default=5000),
    bind_address=dict(type="str", default="0.0.0.0"),
    data_dir=dict(type="path"),
    registry_tls=dict(type="bool", default=True),
    tls_cert=dict(type="path"),
    tls_key=dict(type="path", no_log=False),
    tls_ca=dict(type="path"),
    users=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
    )),
    htpasswd_path=dict(type="path"),
    bcrypt_cost=dict(type="int", default=8),
    allow_plain_http_auth=dict(type="bool", default=False),
    tls_min_version=dict(type="str", choices=["1.2", "1.3"], default="1.2"),
    read_only=dict(type="bool", default=False),
    config_path=dict(type="path"),
    delete_enabled=dict(type="bool", default=False),
    restart_policy=dict(type="str", choices=["no", "on-failure", "always", "unless-stopped"], default="always"),
    config=dict(type="dict", default={}),
    wait_timeout=dict(type="int", default=60),
    # Set by the registry_deploy action plugin only: read the htpasswd file, then deploy with its plan.
    _read_htpasswd=dict(type="bool"),
    _htpasswd=dict(type="dict", no_log=True),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=[("registry_tls", True, ("tls_cert", "tls_key"))],
                           supports_check_mode=True)
    run_module(module)


if __name__ == "__main__":
    main()
