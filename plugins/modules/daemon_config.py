#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: daemon_config
short_description: Merge settings into Docker's daemon.json safely, and say whether Docker needs a reload or a restart
version_added: 0.1.0
description:
  - Merges the given settings into the Docker Engine's configuration file (C(/etc/docker/daemon.json) by default),
    keeping every key it was not asked to change, such as log options, C(data-root) or a GPU runtime set by someone else.
    Creates the file when it is absent.
  - Registry mirrors, insecure registries and proxies have their own options with strict checks; O(settings) takes any
    other key, deep-merged. O(remove) drops keys.
  - Validates before it writes, and writes nothing when a check fails. The checks are the file's JSON (an existing file
    that is not valid JSON, or is empty, is never overwritten unless O(replace_invalid=true)), the value types of every
    key it knows (Docker 23 and later refuse V("true") for a boolean), the keys the engine's version accepts, no key that
    the engine's systemd unit already passes to dockerd as a flag (the classic C(hosts) against C(-H fd://), which keeps
    dockerd from starting), and C(dockerd --validate --config-file) on the candidate file where the installed dockerd
    has it (Docker 23 and later; probed, not assumed).
  - Every check runs on the whole file dockerd would read, not only on the keys this run changes; a key in the file that
    conflicts with a flag of the unit (also one someone else put there) is refused, naming the host, the key and the flag.
  - Writes through a temporary file in the same directory and a rename, keeping the file's mode and owner (a new file is
    C(0644)); O(backup) keeps a copy of the previous file, and only the O(backup_keep) newest copies. A failed write (a full
    disk) leaves no temporary file behind, and each run removes the C(.daemon.json.*.tmp) files an interrupted run left.
  - Writes daemon.json last, after the registry CAs, the proxy drop-in and C(systemctl daemon-reload), so a failure on the
    way leaves the file as the engine runs it.
  - Keeps a root-only record (O(applied_record)) of the daemon.json and drop-in the engine last ran with success. A file on
    disk that differs from it (a run that wrote it and failed before the engine applied it, or a hand edit) is reported in
    RV(pending) and RV(needs), and checked like a change, so the next reload or restart applies it. O(state=applied)
    updates the record after a successful reload or restart, O(state=rolled_back) puts its files back; the
    fleet.images.daemon role does both.
  - Proxies go into daemon.json's C(proxies) object on engines that support it (23 and later) and otherwise into a systemd
    drop-in (O(dropin)) followed by C(systemctl daemon-reload); O(proxy_method=auto) picks by the engine's version, and the
    result says which was used.
  - Returns what the engine needs to pick the change up (RV(needs)), nothing, a reload (SIGHUP) or a restart, with the keys
    behind it, so a role can reload or restart only as much as needed. It never reloads or restarts Docker itself.
extends_documentation_fragment:
  - fleet.images.docker
  - fleet.images.docker.actiongroup_docker
  - fleet.images.docker.attributes
attributes:
  check_mode:
    support: full
    details: Runs every check, including C(dockerd --validate) on a candidate in a temporary directory, and reports the
      change, the diff and RV(needs) without writing any file or running C(systemctl daemon-reload).
  diff_mode:
    support: full
    details: Shows daemon.json (and the drop-in when it changes) before and after, with passwords in proxy URLs masked.
  idempotent:
    support: full
    details: Compares parsed JSON, not text, so a file that only differs in formatting or key order is left alone. A change
      written but not yet applied is reported in RV(needs) on every run until O(state=applied) records it.
options:
  state:
    description:
      - V(present) merges the requested settings into the file.
      - V(applied) records the daemon.json and drop-in now on disk in O(applied_record) as what the engine runs; call it
        after a reload or restart that succeeded. Nothing else is read or changed.
      - V(rolled_back) puts back the daemon.json and drop-in of O(applied_record) (the configuration the engine last ran with
        success) and runs C(systemctl daemon-reload) when the drop-in changed. It does not reload or restart Docker. It
        remembers the daemon.json it replaced as refused (see O(retry_refused)).
    type: str
    choices: [present, applied, rolled_back]
    default: present
  applied_record:
    description:
      - Where the record of the configuration the engine last ran with success is kept. It is JSON, mode 0600 in a
        directory of mode 0700, as it may hold proxy passwords.
      - Made, from the files as they are, before the first write of a host that has none.
    type: path
    default: /var/lib/fleet-images/daemon-applied.json
  retry_refused:
    description:
      - Apply a daemon.json although dockerd refused exactly this file before (O(state=rolled_back) remembers the sha256 of
        each file it replaced). Without it such a file is refused before anything is written, so Docker is not reloaded or
        restarted into a file known to fail.
    type: bool
    default: false
  path:
    description:
      - The daemon configuration file.
      - When the engine's unit starts dockerd with C(--config-file) naming another file, the module warns.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - daemon.json keys and values to set, as dockerd spells them (V(log-opts), V(live-restore)). Objects are merged key by key
        into what the file holds; lists combine as O(list_merge) says; other values replace.
      - Values must have the JSON type dockerd expects. A boolean must be a boolean, not the string V("true").
      - Use O(registry_mirrors), O(insecure_registries) and O(proxies) for those keys rather than setting them here.
        A key given both here and through its own option is refused.
      - A V(null) value is refused. To drop a key, list it in O(remove).
    type: dict
    default: {}
  registry_mirrors:
    description:
      - Registry mirrors (C(registry-mirrors)), each V(https://host[:port]) or V(http://host[:port]) with nothing after the port
        but an optional V(/). A mirror without a scheme, with a path or with credentials is refused.
      - Combined with the file's list as O(list_merge) says; with V(append_unique), V(https://m.example) and V(https://m.example/)
        are the same mirror.
      - Not given means leave C(registry-mirrors) as it is. An empty list with O(list_merge=replace) empties it.
    type: list
    elements: str
  insecure_registries:
    description:
      - Registries reached over plain HTTP or with an unverified certificate (C(insecure-registries)), each V(host[:port]) or a
        CIDR range such as V(10.0.0.0/8). A scheme is refused. Prefer trusting the registry's CA
        (C(/etc/docker/certs.d/HOST:PORT/ca.crt)).
      - Not given means leave C(insecure-registries) as it is.
    type: list
    elements: str
  proxies:
    description:
      - Proxies the engine uses for pulls and pushes. The given values replace the engine's proxy settings as a whole,
        so a value not given is removed.
      - Not given means leave the proxy settings as they are. To remove them, put V(proxies) in O(remove).
      - Passwords in the URLs are masked in the module's output.
    type: dict
    suboptions:
      http:
        description: Proxy for HTTP, such as V(http://proxy.example:3128).
        type: str
      https:
        description: Proxy for HTTPS, such as V(http://proxy.example:3128).
        type: str
      no_proxy:
        description: Hosts and domains reached without the proxy, as a comma-separated string or a list.
        type: raw
  proxy_method:
    description:
      - Where the proxies go.
      - V(daemon_json) writes the C(proxies) object (Docker Engine 23 and later; older engines refuse to start with it).
      - V(systemd) writes O(dropin) with C(HTTP_PROXY), C(HTTPS_PROXY) and C(NO_PROXY) and runs C(systemctl daemon-reload);
        it also drops a C(proxies) object from daemon.json, which would override it.
      - V(auto) uses V(daemon_json) when the running engine is 23 or later and V(systemd) otherwise. When the engine does
        not answer, it reads the version of the installed dockerd (C(dockerd --version)) and says so in a warning. When the
        engine and the installed dockerd disagree (an upgrade waiting for a restart), it uses V(systemd), which both read.
      - With V(daemon_json), a drop-in at O(dropin) that this module wrote earlier is removed.
    type: str
    choices: [auto, daemon_json, systemd]
    default: auto
  list_merge:
    description:
      - How a list given in O(settings), O(registry_mirrors) or O(insecure_registries) combines with the list in the file.
      - V(replace) sets the list to exactly what is given.
      - V(append_unique) keeps the file's entries, in their order, and appends the given ones that are not there yet.
    type: str
    choices: [replace, append_unique]
    default: replace
  remove:
    description:
      - Keys to drop from daemon.json. A dotted path reaches into objects (V(log-opts.max-file)); keys that contain dots
        themselves are found whole (V(default-network-opts.bridge.com.docker.network.driver.mtu)).
      - A key that is not there is not an error.
      - V(proxies) also removes the drop-in at O(dropin).
      - A key both set and removed is refused.
    type: list
    elements: str
    default: []
  backup:
    description:
      - Keep a copy of daemon.json (and of the drop-in) as it was before the change, next to it, with a timestamp in its name.
      - RV(backup_file) names the copy.
    type: bool
    default: false
  backup_keep:
    description:
      - How many copies O(backup) keeps per file (daemon.json and the drop-in); older ones are removed (RV(removed_backups)).
    type: int
    default: 5
  replace_invalid:
    description:
      - Replace an existing daemon.json that is not valid JSON (or is empty), after keeping a backup whatever O(backup) says.
      - Without it such a file is never overwritten; the module fails with the parse error and its line and column.
    type: bool
    default: false
  validate:
    description:
      - Run C(dockerd --validate --config-file) on the candidate file before it replaces daemon.json, where the installed
        dockerd has C(--validate) (Docker Engine 23 and later). Older engines lack it; the module then relies on its own
        checks and says so in RV(validation).
      - The module's own checks (JSON, value types, unit flags) always run.
    type: bool
    default: true
  dropin:
    description:
      - The systemd drop-in that carries the proxies with O(proxy_method=systemd). The module owns this file.
    type: path
    default: /etc/systemd/system/docker.service.d/http-proxy.conf
  unit:
    description:
      - The engine's systemd unit, read with C(systemctl cat) (or from the unit directories when systemd is not running)
        to find the flags dockerd is started with.
    type: str
    default: docker.service
  registry_ca_certs:
    description:
      - CA certificates Docker trusts per registry, as a dict of V(HOST:PORT) to PEM text. Each goes to
        C(CERTS_D/HOST:PORT/ca.crt) (mode 0644), which Docker reads at each connection to that registry, so it needs
        no reload or restart (RV(needs) does not change). Other registries' files are left alone.
      - Checked with everything else before anything is written.
    type: dict
    default: {}
  certs_d:
    description:
      - Docker's per-registry certificate directory, for O(registry_ca_certs).
    type: path
    default: /etc/docker/certs.d
  dockerd_path:
    description:
      - The dockerd binary used for C(--version) and C(--validate).
      - By default the binary the unit's C(ExecStart) runs, else C(dockerd) on the search path.
    type: path
notes:
  - The module talks to the engine only to read its version, whether live-restore is on and how many containers run. When
    the engine does not answer (or the Docker SDK for Python is missing), it still works, from the installed dockerd.
  - When daemon.json already holds every requested setting (and no proxies are managed), nothing will be written and the
    module asks neither dockerd nor the engine anything; RV(engine) then says so in its C(error).
  - Which keys dockerd reloads on SIGHUP follows dockerd's own list (C(registry-mirrors), C(insecure-registries),
    C(live-restore), C(debug), C(labels), C(max-concurrent-downloads), C(max-concurrent-uploads), C(max-download-attempts),
    C(shutdown-timeout), C(runtimes), C(default-runtime), C(default-shm-size), C(default-ipc-mode),
    C(default-cgroupns-mode), C(allow-nondistributable-artifacts), C(network-diagnostic-port)); every other change,
    proxies included, needs a restart.
  - When a change needs a restart while containers run and live-restore is off, the module warns that the restart stops them,
    unless the change turns live-restore on; then reload first (C(live-restore) is in RV(needs_keys.reload)) and restart
    after, as the fleet.images.daemon role does, and the containers keep running.
author:
  - fleet.images contributors (!UNKNOWN)
seealso:
  - name: Docker daemon configuration file
    description: dockerd's reference for daemon.json.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Use the site registry as a mirror and keep every other key of daemon.json
  fleet.images.daemon_config:
    registry_mirrors:
      - https://registry.site.example:5000
    backup: true
  register: daemon

- name: Reload Docker when only reloadable keys changed
  ansible.builtin.command: systemctl reload docker
  when: daemon.needs == "reload"
  changed_when: true

- name: Proxies, in daemon.json on Docker 23+ and in a systemd drop-in before
  fleet.images.daemon_config:
    proxies:
      http: http://proxy.site.example:3128
      https: http://proxy.site.example:3128
      no_proxy: [localhost, 127.0.0.1, .site.example]

- name: Any other key, deep-merged; lists appended without duplicates
  fleet.images.daemon_config:
    settings:
      live-restore: true
      log-opts:
        max-size: 10m
      default-address-pools:
        - base: 10.200.0.0/16
          size: 24
    list_merge: append_unique

- name: Drop a key and one nested option
  fleet.images.daemon_config:
    remove:
      - debug
      - log-opts.max-file

- name: Replace a daemon.json that is not valid JSON (a backup is kept)
  fleet.images.daemon_config:
    settings:
      live-restore: true
    replace_invalid: true
"""

RETURN = r"""
path:
  description: The daemon configuration file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
config:
  description: The configuration the file holds after this run (what it would hold, in check mode), passwords masked.
  returned: success, with O(state=present)
  type: dict
  sample: {"data-root": "/var/lib/docker", "registry-mirrors": ["https://registry.site.example:5000"]}
previous_config:
  description: The configuration the file held before, passwords masked; V(null) when it did not exist or was not valid JSON.
  returned: success, with O(state=present)
  type: dict
changed_keys:
  description: Top-level daemon.json keys this run added, changed or removed.
  returned: success, with O(state=present)
  type: list
  elements: str
  sample: [registry-mirrors]
needs:
  description:
    - What the engine needs to pick the change up. V(none), V(reload) (SIGHUP, C(systemctl reload docker)) or V(restart).
    - A restart whenever any change needs one; V(reload) only when every changed key is one dockerd reloads.
  returned: success, with O(state=present)
  type: str
  sample: reload
needs_keys:
  description: The changed keys behind RV(needs), split by what each needs; V(proxies) when the drop-in changed.
  returned: success, with O(state=present)
  type: dict
  contains:
    reload:
      description: Changed keys dockerd applies on SIGHUP.
      type: list
      elements: str
    restart:
      description: Changed keys that take effect only after a restart.
      type: list
      elements: str
  sample: {"reload": ["registry-mirrors"], "restart": []}
proxy_method:
  description: Where the proxies went, V(daemon_json) or V(systemd); V(null) when this run did not manage proxies.
  returned: success, with O(state=present)
  type: str
  sample: systemd
created:
  description: Whether daemon.json did not exist and was created.
  returned: success, with O(state=present)
  type: bool
backup_file:
  description: The copy of the previous daemon.json, when one was made.
  returned: when a backup was made
  type: str
  sample: /etc/docker/daemon.json.2345.2024-05-01@10:00:00~
replaced_invalid:
  description: Why the previous daemon.json was invalid, when O(replace_invalid=true) replaced it (a backup was kept).
  returned: when an invalid file was replaced
  type: str
  sample: "/etc/docker/daemon.json is not valid JSON: Expecting ',' delimiter at line 3, column 3"
pending:
  description:
    - Whether the files on disk held a change the engine has not applied yet (they differ from O(applied_record)) before
      this run. RV(needs) includes it, while the module may report no change.
  returned: when O(state=present)
  type: bool
pending_keys:
  description: The daemon.json keys (and V(proxies) for the drop-in) on disk that the engine has not applied yet.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [registry-mirrors]
removed_temp_files:
  description: Temporary files an interrupted run had left next to daemon.json or the drop-in, removed by this run.
  returned: when O(state=present)
  type: list
  elements: str
removed_backups:
  description: Backups older than the O(backup_keep) newest, removed by this run.
  returned: when O(state=present)
  type: list
  elements: str
applied_record:
  description: The record of what the engine last ran with.
  returned: always
  type: str
  sample: /var/lib/fleet-images/daemon-applied.json
restored:
  description: The files O(state=rolled_back) put back.
  returned: when O(state=rolled_back)
  type: list
  elements: str
dropin_restored:
  description: Whether O(state=rolled_back) put the drop-in back (then C(systemctl daemon-reload) ran).
  returned: when O(state=rolled_back)
  type: bool
problems:
  description: Every reason the change was refused, one per item (also joined in C(msg)).
  returned: failure
  type: list
  elements: str
  sample: ["'registry-mirrors' item 1 \"mirror.example:5000\" has no scheme: write it as https://mirror.example:5000"]
registry_ca_certs:
  description: The registries of O(registry_ca_certs) whose C(ca.crt) was written (or, in check mode, would be).
  returned: success, with O(state=present)
  type: list
  elements: str
  sample: ["registry1.site.example:5000"]
dropin:
  description: The systemd drop-in with the proxies.
  returned: success, with O(state=present)
  type: dict
  contains:
    path:
      description: Its path.
      type: str
    state:
      description: V(present) or V(absent) after this run.
      type: str
    changed:
      description: Whether this run wrote or removed it.
      type: bool
    created:
      description: Whether it did not exist before.
      type: bool
    backup_file:
      description: The copy of the previous drop-in, when one was made.
      type: str
    systemd_reloaded:
      description: Whether C(systemctl daemon-reload) ran after the change.
      type: bool
validation:
  description: What checked the candidate besides the module's own checks.
  returned: success, with O(state=present)
  type: dict
  contains:
    dockerd:
      description:
        - V(passed) or V(failed) (C(dockerd --validate) ran), V(unavailable) (this dockerd has no C(--validate)),
          V(not_found) (no dockerd binary), V(skipped) (O(validate=false)) or V(not_needed) (nothing to write).
      type: str
    binary:
      description: The dockerd binary used.
      type: str
    message:
      description: What dockerd said, or why it did not run.
      type: str
  sample: {"dockerd": "unavailable", "binary": "/usr/sbin/dockerd", "message": "dockerd 20.10.24 has no --validate"}
engine:
  description: What the module learnt about the engine.
  returned: success, with O(state=present)
  type: dict
  contains:
    version:
      description: The version used for version-dependent decisions.
      type: str
    source:
      description: Where that version came from, V(engine), V(dockerd binary) or V(unknown).
      type: str
    engine_version:
      description: The running engine's version, V(null) when it did not answer.
      type: str
    binary_version:
      description: The installed dockerd's version, V(null) when unknown.
      type: str
    running_containers:
      description: Containers running in the engine, V(null) when it did not answer.
      type: int
    live_restore:
      description: Whether the running engine has live-restore on, V(null) when it did not answer.
      type: bool
    error:
      description: Why the engine could not be asked, if it could not.
      type: str
unit:
  description: What the module read from the engine's systemd unit.
  returned: success, with O(state=present)
  type: dict
  contains:
    name:
      description: The unit.
      type: str
    files:
      description: The unit file and drop-ins read, in order; empty when the unit was not found.
      type: list
      elements: str
    exec_start_file:
      description: The file that sets the effective C(ExecStart).
      type: str
    flags:
      description: dockerd's flags from C(ExecStart), environment expanded.
      type: list
      elements: str
    reload:
      description: Whether the unit has C(ExecReload), so C(systemctl reload) sends SIGHUP.
      type: bool
    config_file:
      description: The C(--config-file) the unit passes, if any.
      type: str
  sample:
    name: docker.service
    files: [/lib/systemd/system/docker.service, /etc/systemd/system/docker.service.d/10-lab.conf]
    exec_start_file: /etc/systemd/system/docker.service.d/10-lab.conf
    flags: ["-H fd://", "--containerd /run/containerd/containerd.sock"]
    reload: true
    config_file: null
"""

import errno
import hashlib
import json
import os
import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils import atomic_file
from ansible_collections.fleet.images.plugins.module_utils import daemon_json as dj
from ansible_collections.fleet.images.plugins.module_utils import systemd_dropin
from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.registry_host import (
    docker_ca_path,
    install_ca,
    looks_like_pem_certificate,
    registry_address_problem,
)

UNIT_DIRECTORIES = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
DOCKERD_SEARCH_DIRS = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
NEW_FILE_MODE = 0o644
NEW_DIRECTORY_MODE = 0o755
HOSTNAME = platform.node() or "this host"
# How many daemon.json files the engine refused the record remembers (by sha256).
KEEP_REFUSED = 10
DEDICATED_OPTIONS = (("registry_mirrors", "registry-mirrors"), ("insecure_registries", "insecure-registries"), ("proxies", "proxies"))


class Refused(Exception):
    """The change cannot be made; nothing was written. `problems` lists every reason."""

    def __init__(self, message, problems=None, **details):
        super().__init__(message)
        self.problems = problems or []
        self.details = details


# ---------------------------------------------------------------------------------------------
# Reading the host


def read_file(path):
    """The text of a file, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused("%s is not UTF-8 text (byte %d): dockerd cannot read it either. Nothing was written." % (path, exc.start)) from exc


def systemd_is_running():
    return os.path.isdir("/run/systemd/system")


def unit_text_from_files(unit):
    """What `systemctl cat` would print, built from the unit directories (systemd not running)."""
    seen = set()
    fragment = None
    for directory in UNIT_DIRECTORIES:
        candidate = os.path.join(directory, unit)
        if os.path.isfile(candidate):
            fragment = candidate
            break
    dropins = {}
    for directory in reversed(UNIT_DIRECTORIES):
        folder = os.path.join(directory, unit + ".d")
        real = os.path.realpath(folder)
        if real in seen or not os.path.isdir(folder):
            continue
        seen.add(real)
        for name in os.listdir(folder):
            if name.endswith(".conf"):
                # a higher-priority directory (earlier in UNIT_DIRECTORIES, visited later) wins
                dropins[name] = os.path.join(folder, name)
    parts = []
    for path in ([fragment] if fragment else []) + [dropins[name] for name in sorted(dropins)]:
        with open(path, encoding="utf-8", errors="replace") as handle:
            parts.append("# %s\n%s" % (path, handle.read()))
    return "\n\n".join(parts)


def read_unit(module, unit):
    """The parsed unit (or None) and the dockerd argv it starts, environment expanded."""
    systemctl = module.get_bin_path("systemctl")
    text = ""
    if systemctl and systemd_is_running():
        rc, out, dummy = module.run_command([systemctl, "cat", "--no-pager", unit], environ_update={"LC_ALL": "C"})
        if rc == 0:
            text = out
    if not text.strip():
        text = unit_text_from_files(unit)
    if not text.strip():
        return None, []
    info = dj.parse_unit(text)
    if not info.exec_start:
        return info, []
    environment = dict(info.environment)
    for path, optional in info.environment_files:
        content = read_file(path)
        if content is None:
            if not optional:
                module.warn("%s names EnvironmentFile=%s, which does not exist" % (info.exec_start_file, path))
            continue
        environment.update(dj.parse_environment_file(content))
    try:
        argv = dj.expand_exec_start(info.exec_start, environment)
    except dj.DaemonJsonError as exc:
        module.warn("%s: %s; the unit's flags are not checked" % (info.exec_start_file, exc))
        return info, []
    return info, argv


def find_dockerd(module, unit_argv):
    if module.params["dockerd_path"]:
        path = module.params["dockerd_path"]
        return path if os.access(path, os.X_OK) else None
    if unit_argv and os.path.basename(unit_argv[0]) in dj.DOCKERD_BINARY_NAMES and os.access(unit_argv[0], os.X_OK):
        return unit_argv[0]
    return module.get_bin_path("dockerd", opt_dirs=DOCKERD_SEARCH_DIRS)


def probe_dockerd(module, binary):
    """(version tuple or None, version text, has --validate)."""
    if not binary:
        return None, None, False
    rc, out, err = module.run_command([binary, "--version"], environ_update={"LC_ALL": "C"})
    version_text = (out or err).strip() if rc == 0 else None
    rc, out, err = module.run_command([binary, "--help"], environ_update={"LC_ALL": "C"})
    has_validate = "--validate" in (out + err)
    return dj.parse_version(version_text), version_text, has_validate


def ask_engine(params):
    """What the running engine says: version, running containers, live-restore. Never fails the module."""
    # Imported here: a run with nothing to write never asks the engine, and skips the SDK's import.
    from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
        DockerConnectionError,
        DockerException,
        RequestException,
        build_client,
    )

    facts = dict(engine_version=None, running_containers=None, live_restore=None, error=None)
    try:
        client = build_client(params)
    except DockerConnectionError as exc:
        facts["error"] = str(exc)
        return facts
    try:
        facts["engine_version"] = client.version().get("Version")
        info = client.info()
        facts["running_containers"] = info.get("ContainersRunning")
        facts["live_restore"] = info.get("LiveRestoreEnabled")
    except (DockerException, RequestException, OSError, ValueError) as exc:
        # Only means falling back to the installed binary: reported, never fatal.
        facts["error"] = "the engine answered the ping but not the version/info request: %s" % exc
    finally:
        client.close()
    return facts


# ---------------------------------------------------------------------------------------------
# Deciding


def requested_overlay(params):
    """The daemon.json keys the options ask for, without proxies (they depend on the method)."""
    settings = params["settings"] or {}
    problems = []
    for name, value in settings.items():
        if value is None:
            problems.append("settings.%s is null: to drop a key, list it in remove" % name)
    for option, key in DEDICATED_OPTIONS:
        if params[option] is not None and key in settings:
            problems.append("'%s' is given both in settings and as %s: give it once, as %s" % (key, option, option))
    overlay = dict(settings)
    if params["registry_mirrors"] is not None:
        overlay["registry-mirrors"] = list(params["registry_mirrors"])
    if params["insecure_registries"] is not None:
        overlay["insecure-registries"] = list(params["insecure_registries"])
    return overlay, problems


def proxies_option(params, problems):
    """daemon.json's proxies object for the proxies option (None when not given); problems appended."""
    option = params["proxies"]
    if option is None:
        return None
    option = dict(option)
    no_proxy = option.get("no_proxy")
    if isinstance(no_proxy, (list, tuple)):
        option["no_proxy"] = ",".join(str(item).strip() for item in no_proxy)
    elif no_proxy is not None and not isinstance(no_proxy, str):
        problems.append("proxies.no_proxy must be a string or a list of strings, not %s" % type(no_proxy).__name__)
        return None
    wanted = dj.proxies_from_option(option)
    if not wanted:
        problems.append("proxies has no value: give http, https or no_proxy, or put 'proxies' in remove to drop the engine's proxies")
        return None
    problem = dj.check_proxies(wanted)
    if problem:
        problems.append("proxies %s" % problem)
    return wanted


def pick_proxy_method(module, requested, engine, binary_version):
    """daemon_json or systemd; for `auto` decided by version, with a warning when it had to fall back."""
    engine_version = dj.parse_version(engine["engine_version"])
    if requested != "auto":
        return requested
    if engine_version is not None:
        if binary_version is not None and dj.proxies_supported(binary_version) != dj.proxies_supported(engine_version):
            module.warn("The running engine is %s but the installed dockerd is %s (an upgrade waiting for a restart?): proxies go into "
                        "the systemd drop-in, which both read." % (dj.format_version(engine_version), dj.format_version(binary_version)))
            return "systemd"
        return "daemon_json" if dj.proxies_supported(engine_version) else "systemd"
    if binary_version is not None:
        module.warn("The Docker Engine did not answer (%s); proxy_method=auto used the installed dockerd's version %s instead."
                    % (engine["error"], dj.format_version(binary_version)))
        return "daemon_json" if dj.proxies_supported(binary_version) else "systemd"
    raise Refused("proxy_method=auto cannot tell the engine's version: the engine did not answer (%s) and no dockerd binary was found. "
                  "Set proxy_method to daemon_json (Docker 23+) or systemd. Nothing was written." % engine["error"])


def version_for_checks(engine, binary_version):
    """The lowest version known: the running engine reloads the file, the installed binary reads it at the next start."""
    known = [version for version in (dj.parse_version(engine["engine_version"]), binary_version) if version is not None]
    return min(known) if known else None


# ---------------------------------------------------------------------------------------------
# Writing


def ensure_directory(path):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, NEW_DIRECTORY_MODE)


def write_temp(module, path, text, check_mode):
    """A temporary file holding `text`: next to `path` (same file system, for the rename), or in the
    module's scratch directory in check mode (nothing is created next to the real file).
    A failed write (a full disk) leaves no temporary file and raises WriteFailed naming `path`."""
    directory = os.path.dirname(os.path.realpath(path))
    if check_mode or not os.path.isdir(directory):
        directory = module.tmpdir
    try:
        return atomic_file.write_temp(directory, os.path.basename(path), text.encode("utf-8"))
    except OSError as exc:
        raise WriteFailed(path, exc) from None


def install(module, temp, path, existed):
    """Rename the temporary file over `path` (over its target when it is a symlink, which stays);
    atomic_move keeps an existing file's mode, owner and context."""
    path = os.path.realpath(path)
    try:
        module.atomic_move(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    if not existed:
        os.chmod(path, NEW_FILE_MODE)


def put_file(module, path, text, existed):
    """Replace `path` with `text` through a temporary file next to it."""
    ensure_directory(path)
    install(module, write_temp(module, path, text, False), path, existed)


class WriteFailed(Exception):
    """Writing a file failed; the message names the host, the file and what to do."""

    def __init__(self, path, exc, what=None):
        reason = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc)).lower()
        super().__init__("Cannot write %s on %s: %s (in %s). %s was left as it was and no temporary file remains; %s, then run again." % (
            what or path, HOSTNAME, reason, os.path.dirname(os.path.realpath(path)), path,
            "free space there" if exc.errno == errno.ENOSPC else "fix that"))


def dockerd_validate(module, binary, candidate, real_path):
    rc, out, err = module.run_command([binary, "--validate", "--config-file", candidate], environ_update={"LC_ALL": "C"})
    said = " ".join(part.strip() for part in (out, err) if part and part.strip()).replace(candidate, real_path)
    return rc == 0, dj.mask_url(said)


# ---------------------------------------------------------------------------------------------
# What the engine last ran: a root-only record written when an apply succeeded


def read_record(module, path):
    """The record (dict with daemon_json and dropin texts) for daemon.json at `path`, or None."""
    record_path = module.params["applied_record"]
    text = read_file(record_path)
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        module.warn("%s is not a record this module wrote (not JSON); it is ignored and rewritten at the next successful apply" % record_path)
        return None
    if not isinstance(record, dict) or record.get("path") != os.path.realpath(path):
        return None
    return record


def write_record(module, path, daemon_text, dropin_text, refused=()):
    """Record the files the engine runs with (mode 0600 in a 0700 directory: proxy passwords), and the
    sha256 of the daemon.json files it refused (the newest KEEP_REFUSED)."""
    record_path = module.params["applied_record"]
    directory = os.path.dirname(record_path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    data = json.dumps(dict(path=os.path.realpath(path), daemon_json=daemon_text, dropin_path=module.params["dropin"], dropin=dropin_text,
                           refused=list(refused)[-KEEP_REFUSED:]), indent=2, sort_keys=True) + "\n"
    try:
        return atomic_file.atomic_write(record_path, data.encode("utf-8"), mode=0o600)
    except OSError as exc:
        raise WriteFailed(record_path, exc) from None


def digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pending_changes(record, current, dropin_text, path):
    """(daemon.json keys on disk that the engine does not run yet, whether the drop-in differs), from the record."""
    if record is None:
        return [], False
    applied = {}
    if record.get("daemon_json") is not None:
        try:
            applied = dj.parse_config(record["daemon_json"], path)[0]
        except dj.ParseError:
            applied = {"(unreadable record)": True}
    return dj.changed_keys(applied, current), record.get("dropin") != dropin_text


def collect_secrets(module, *sources):
    """Register every URL password found in the given texts and values as a secret Ansible masks."""
    for source in sources:
        for secret in dj.passwords_in(source):
            if len(secret) > 1:
                module.no_log_values.add(secret)


def scrub(module, text):
    return dj.hide_secrets(text, module.no_log_values)


def main():
    module = AnsibleModule(
        argument_spec=docker_connection_args(
            state=dict(type="str", choices=["present", "applied", "rolled_back"], default="present"),
            path=dict(type="path", default="/etc/docker/daemon.json"),
            settings=dict(type="dict", default={}),
            registry_mirrors=dict(type="list", elements="str"),
            insecure_registries=dict(type="list", elements="str"),
            proxies=dict(type="dict", options=dict(
                http=dict(type="str"),
                https=dict(type="str"),
                no_proxy=dict(type="raw"),
            )),
            proxy_method=dict(type="str", choices=["auto", "daemon_json", "systemd"], default="auto"),
            list_merge=dict(type="str", choices=list(dj.LIST_MERGE_MODES), default="replace"),
            remove=dict(type="list", elements="str", default=[]),
            backup=dict(type="bool", default=False),
            backup_keep=dict(type="int", default=5),
            replace_invalid=dict(type="bool", default=False),
            validate=dict(type="bool", default=True),
            dropin=dict(type="path", default="/etc/systemd/system/docker.service.d/http-proxy.conf"),
            unit=dict(type="str", default="docker.service"),
            dockerd_path=dict(type="path"),
            registry_ca_certs=dict(type="dict", default={}),
            certs_d=dict(type="path", default="/etc/docker/certs.d"),
            applied_record=dict(type="path", default="/var/lib/fleet-images/daemon-applied.json"),
            retry_refused=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        if module.params["backup_keep"] < 1:
            raise Refused("backup_keep must be 1 or more (the newest backup is what a rollback may need), not %d" % module.params["backup_keep"])
        if module.params["state"] == "applied":
            result = record_applied(module)
        elif module.params["state"] == "rolled_back":
            result = roll_back(module)
        else:
            result = run(module)
    except Refused as exc:
        module.fail_json(msg=scrub(module, str(exc)), problems=[scrub(module, item) for item in exc.problems], path=path, **exc.details)
    except WriteFailed as exc:
        module.fail_json(msg=scrub(module, str(exc)), path=path)
    except (OSError, dj.DaemonJsonError) as exc:
        module.fail_json(msg=scrub(module, "While changing %s on %s: %s" % (path, HOSTNAME, exc)), path=path)
    module.exit_json(**result)


def hide_proxy_passwords(module):
    """Register the passwords inside proxy URLs as secrets, so Ansible masks them in every output,
    including the echoed module arguments."""
    given = list((module.params["proxies"] or {}).values())
    in_settings = (module.params["settings"] or {}).get("proxies")
    if isinstance(in_settings, dict):
        given += list(in_settings.values())
    collect_secrets(module, given)


def record_applied(module):
    """state=applied: the engine runs the files now on disk (the role calls this after its reload or restart succeeded)."""
    path = module.params["path"]
    daemon_text, dropin_text = read_file(path), read_file(module.params["dropin"])
    collect_secrets(module, daemon_text, dropin_text)
    record = read_record(module, path)
    refused = [item for item in (record or {}).get("refused", []) if daemon_text is None or item != digest(daemon_text)]
    changed = record is None or record.get("daemon_json") != daemon_text or record.get("dropin") != dropin_text \
        or refused != record.get("refused", [])
    if changed and not module.check_mode:
        write_record(module, path, daemon_text, dropin_text, refused)
    return dict(changed=changed, path=path, applied_record=module.params["applied_record"])


def roll_back(module):
    """state=rolled_back: put back the daemon.json and drop-in of the record (what the engine last ran with success)."""
    params = module.params
    path, dropin_path = params["path"], params["dropin"]
    record = read_record(module, path)
    if record is None:
        raise Refused("There is no record at %s of a %s the engine ran with on %s: nothing to roll back to. Restore the file by hand "
                      "(a backup is next to it) and restart Docker." % (params["applied_record"], path, HOSTNAME))
    collect_secrets(module, record.get("daemon_json"), record.get("dropin"))
    refused_text = read_file(path)
    if refused_text is not None and refused_text != record.get("daemon_json") and not module.check_mode:
        # the engine refused this file: a later run does not apply it again (retry_refused overrides)
        write_record(module, path, record.get("daemon_json"), record.get("dropin"), record.get("refused", []) + [digest(refused_text)])
    restored = []
    for target, wanted in ((path, record.get("daemon_json")), (dropin_path, record.get("dropin"))):
        current = read_file(target)
        if current == wanted:
            continue
        restored.append(target)
        if module.check_mode:
            continue
        if wanted is None:
            os.unlink(target)
        else:
            put_file(module, target, wanted, current is not None)
    dropin_restored = dropin_path in restored
    if dropin_restored and not module.check_mode:
        daemon_reload(module, dropin_path)
    return dict(changed=bool(restored), path=path, restored=restored, dropin_restored=dropin_restored,
                applied_record=params["applied_record"])


def daemon_reload(module, dropin_path):
    """systemctl daemon-reload after a drop-in changed; True when it ran."""
    systemctl = module.get_bin_path("systemctl")
    if not (systemctl and systemd_is_running()):
        return False
    rc, out, err = module.run_command([systemctl, "daemon-reload"])
    if rc != 0:
        raise Refused("%s was written on %s but systemctl daemon-reload failed: %s. daemon.json was not changed; fix systemd and run again "
                      "(the next run applies the drop-in)." % (dropin_path, HOSTNAME, (err or out).strip()))
    return True


def run(module):
    params = module.params
    path = params["path"]
    hide_proxy_passwords(module)
    check_mode = module.check_mode
    warnings = []

    overlay, problems = requested_overlay(params)
    wanted_proxies = proxies_option(params, problems)
    remove = list(params["remove"])
    remove_proxies = "proxies" in remove
    for item in remove:
        if dj.resolve_path(overlay, item) is not None or (item.split(".", 1)[0] == "proxies" and wanted_proxies is not None):
            problems.append("'%s' is both set and removed: give it in one place only" % item)
    for registry, ca_cert in sorted(params["registry_ca_certs"].items()):
        problem = registry_address_problem(registry, params["certs_d"])
        if problem:
            problems.append("registry_ca_certs: %s" % problem)
        elif not isinstance(ca_cert, str) or not looks_like_pem_certificate(ca_cert):
            problems.append("registry_ca_certs: the CA for %s is not PEM certificate text (-----BEGIN CERTIFICATE----- ...)" % registry)
    if problems:
        raise Refused("%s: the change was refused and nothing was written:\n- %s" % (path, "\n- ".join(problems)), problems)

    # Temporary files an interrupted run left behind.
    stale = [name for target in (path, params["dropin"]) for name in atomic_file.stale_temps(target)]
    if stale and not check_mode:
        for target in (path, params["dropin"]):
            atomic_file.remove_stale_temps(target)

    # What the files hold now, and what the engine last ran with.
    text = read_file(path)
    dropin_path = params["dropin"]
    dropin_text = read_file(dropin_path)
    collect_secrets(module, text, dropin_text)
    existed = text is not None
    current, invalid_reason = {}, None
    if existed:
        try:
            current, parse_warnings = dj.parse_config(text, path)
            warnings.extend(parse_warnings)
        except dj.ParseError as exc:
            if not params["replace_invalid"]:
                raise Refused("%s\nNothing was written. Fix the file, or set replace_invalid=true to replace it (a backup is kept)." % exc,
                              [str(exc)], line=exc.line, column=exc.column)
            invalid_reason = str(exc)
    record = read_record(module, path)
    if record is not None:
        collect_secrets(module, record.get("daemon_json"), record.get("dropin"))
    pending_keys, dropin_pending = pending_changes(record, current, dropin_text, path) if invalid_reason is None else ([], False)
    pending = bool(pending_keys or dropin_pending)

    # The unit, the installed dockerd, the running engine. When the file already holds what is asked,
    # the engine runs it and no proxy method has to be picked, nothing will be written: dockerd and
    # the engine are not asked, which is most of a rerun's cost.
    unit_info, unit_argv = read_unit(module, params["unit"])
    flags = dj.dockerd_flags(unit_argv)
    settled = (existed and invalid_reason is None and wanted_proxies is None and not remove_proxies and not pending
               and dj.remove_paths(dj.merge(current, overlay, params["list_merge"]), remove)[0] == current)
    if settled:
        binary, binary_version, binary_version_text, has_validate = None, None, None, False
        engine = dict(engine_version=None, running_containers=None, live_restore=None,
                      error="not asked: %s already holds the requested settings" % path)
    else:
        binary = find_dockerd(module, unit_argv)
        binary_version, binary_version_text, has_validate = probe_dockerd(module, binary)
        engine = ask_engine(params)
    check_version = version_for_checks(engine, binary_version)

    config_flag = dj.config_file_flag(flags)
    if config_flag and os.path.realpath(config_flag) != os.path.realpath(path):
        warnings.append("%s starts dockerd with --config-file %s: dockerd does not read %s, so this change has no effect on it"
                        % (unit_info.exec_start_file, config_flag, path))

    # The candidate.
    candidate = dj.merge(current, overlay, params["list_merge"])
    candidate, dummy = dj.remove_paths(candidate, remove)
    method = None
    dropin_wanted = dropin_text  # unchanged unless proxies are managed
    if wanted_proxies is not None:
        method = pick_proxy_method(module, params["proxy_method"], engine, binary_version)
        if method == "daemon_json":
            candidate["proxies"] = wanted_proxies
            if dropin_text is not None and systemd_dropin.is_managed(dropin_text):
                dropin_wanted = None
            elif dropin_text is not None and systemd_dropin.parse_proxy_dropin(dropin_text):
                warnings.append("%s, which this module did not write, also sets proxies in dockerd's environment; "
                                "daemon.json's proxies take precedence, but remove it to keep one source" % dropin_path)
        else:
            candidate.pop("proxies", None)
            dropin_wanted = systemd_dropin.render_proxy_dropin(wanted_proxies)
    elif remove_proxies:
        dropin_wanted = None

    # Every check runs on the whole candidate: it is what dockerd reads at its next start, whatever restarts it.
    keys = dj.changed_keys(current, candidate)
    must_be_valid = set(keys) | set(overlay) | set(pending_keys) | ({"proxies"} if method == "daemon_json" else set())
    will_validate = params["validate"] and has_validate
    report = dj.validate_config(candidate, must_be_valid, check_version, unknown_keys_checked_elsewhere=will_validate)
    errors = list(report.errors)
    warnings.extend(report.warnings)
    for dummy_path, top, message in dj.find_flag_conflicts(candidate, flags, unit_info.exec_start_file if unit_info else None, HOSTNAME):
        errors.append(message)
    if errors:
        raise Refused("%s: the change was refused and nothing was written:\n- %s" % (path, "\n- ".join(errors)), errors)

    file_changes = (not existed and bool(candidate)) or invalid_reason is not None or (existed and candidate != current)
    dropin_changes = dropin_wanted != dropin_text
    needs, needs_keys = dj.classify(sorted(set(keys) | set(pending_keys)),
                                    extra_restart=["proxies"] if dropin_changes or dropin_pending else ())
    new_text = dj.render_config(candidate)

    to_apply = new_text if file_changes else (text if pending_keys else None)
    if to_apply is not None and record is not None and digest(to_apply) in record.get("refused", []) and not params["retry_refused"]:
        raise Refused("On %s, dockerd refused exactly this %s at an earlier reload or restart, and the configuration it ran before was "
                      "put back: it is not applied again. Change the settings (the earlier failure said what dockerd refused), or set "
                      "retry_refused=true to try it once more. Nothing was written." % (HOSTNAME, path))

    # Check the file dockerd will read (the candidate, or the unapplied file on disk) with dockerd itself.
    validation = dict(dockerd="not_needed", binary=binary, message="nothing to write")
    if to_apply is not None:
        if not params["validate"]:
            validation.update(dockerd="skipped", message="validate=false")
        elif not binary:
            validation.update(dockerd="not_found", message="no dockerd binary found; only the module's own checks ran")
        elif not has_validate:
            validation.update(dockerd="unavailable", message="dockerd %s has no --validate; only the module's own checks ran"
                              % (dj.format_version(binary_version) if binary_version else "(version unknown)"))
        else:
            temp = write_temp(module, path, to_apply, True)
            try:
                passed, said = dockerd_validate(module, binary, temp, path)
            finally:
                os.unlink(temp)
            validation.update(dockerd="passed" if passed else "failed", message=said)
            if not passed:
                what = "the new %s, which was not written" % path if file_changes else "%s on disk, which the engine has not applied yet" % path
                raise Refused("dockerd --validate on %s refused %s: %s" % (HOSTNAME, what, said), [said], validation=validation)

    # Writes: the files Docker reads at once or only after a restart first, daemon.json last, so a
    # failure on the way leaves daemon.json as the engine runs it. A record of what the engine runs
    # (the files as they are now, when there is none yet) lets a rerun see what is written but not applied.
    writes = file_changes or dropin_changes
    if writes and record is None and not check_mode:
        write_record(module, path, text, dropin_text)

    # Docker reads these at each connection: they never change what the engine needs.
    trusted = [registry for registry, ca_cert in sorted(params["registry_ca_certs"].items())
               if write_ca(docker_ca_path(registry, params["certs_d"]), ca_cert, check_mode)]

    dropin_result = dict(path=dropin_path, state="present" if dropin_wanted is not None else "absent", changed=dropin_changes,
                         created=dropin_changes and dropin_text is None, backup_file=None, systemd_reloaded=False)
    pruned = []
    if dropin_changes and not check_mode:
        if dropin_text is not None and params["backup"]:
            dropin_result["backup_file"] = make_backup(dropin_path)
            pruned += atomic_file.prune_backups(dropin_path, params["backup_keep"])
        if dropin_wanted is None:
            os.unlink(dropin_path)
        else:
            put_file(module, dropin_path, dropin_wanted, dropin_text is not None)
        dropin_result["systemd_reloaded"] = daemon_reload(module, dropin_path)

    backup_file = None
    if file_changes and not check_mode:
        ensure_directory(path)
        temp = write_temp(module, path, new_text, False)
        try:
            if existed and (params["backup"] or invalid_reason is not None):
                backup_file = make_backup(path)
                pruned += atomic_file.prune_backups(path, params["backup_keep"])
            install(module, temp, path, existed)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    # A change that turns live-restore on is applied by a reload before the restart (the daemon role
    # does), which keeps the containers: no warning then.
    if needs == "restart" and engine["running_containers"] and not engine["live_restore"] and candidate.get("live-restore") is not True:
        warnings.append("Applying this change needs a Docker restart (%s) and live-restore is off: a plain restart stops the %s running container(s). "
                        "Turning live-restore on first (a reload) would keep them running."
                        % (", ".join(needs_keys["restart"]), engine["running_containers"]))
    for warning in warnings:
        module.warn(scrub(module, warning))

    diff = []
    if file_changes:
        before = "(not valid JSON, not shown: %s)\n" % invalid_reason if invalid_reason is not None else (
            dj.render_config(dj.mask_credentials(current)) if existed else "")
        diff.append(dict(before_header=path, after_header=path, before=before, after=dj.render_config(dj.mask_credentials(candidate))))
    if dropin_changes:
        diff.append(dict(before_header=dropin_path, after_header=dropin_path, before=dj.mask_url(dropin_text or ""), after=dj.mask_url(dropin_wanted or "")))

    engine_out = dict(
        version=dj.format_version(check_version) if check_version else None,
        source="engine" if engine["engine_version"] else ("dockerd binary" if binary_version else "unknown"),
        engine_version=engine["engine_version"],
        binary_version=binary_version_text,
        running_containers=engine["running_containers"],
        live_restore=engine["live_restore"],
        error=engine["error"],
    )
    unit_out = dict(
        name=params["unit"],
        files=list(unit_info.files) if unit_info else [],
        exec_start_file=unit_info.exec_start_file if unit_info else None,
        flags=[dj.mask_url("%s %s" % (flag.flag, flag.value) if flag.value else flag.flag) for flag in flags],
        reload=bool(unit_info and unit_info.exec_reload),
        config_file=config_flag,
    )
    result = dict(
        changed=bool(file_changes or dropin_changes or trusted or stale or pruned),
        registry_ca_certs=trusted,
        path=path,
        config=dj.mask_credentials(candidate),
        previous_config=dj.mask_credentials(current) if existed and invalid_reason is None else None,
        changed_keys=keys,
        needs=needs,
        needs_keys=needs_keys,
        pending=pending,
        pending_keys=sorted(set(pending_keys) | ({"proxies"} if dropin_pending else set())),
        proxy_method=method,
        created=bool(file_changes and not existed),
        dropin=dropin_result,
        validation=validation,
        engine=engine_out,
        unit=unit_out,
        removed_temp_files=stale,
        removed_backups=pruned,
        applied_record=params["applied_record"],
        diff=diff,
    )
    if backup_file:
        result["backup_file"] = backup_file
    if invalid_reason is not None and file_changes:
        result["replaced_invalid"] = invalid_reason
    return result


def make_backup(path):
    try:
        return atomic_file.backup_copy(path)
    except OSError as exc:
        raise WriteFailed(path, exc, "a backup of %s" % path) from None


def write_ca(ca_path, ca_cert, check_mode):
    try:
        return install_ca(ca_path, ca_cert, check_mode)
    except OSError as exc:
        raise WriteFailed(ca_path, exc) from None


if __name__ == "__main__":
    main()
