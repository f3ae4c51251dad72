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
  - Which daemon.json keys exist is decided by C(dockerd --validate) where it runs (Docker Engine 23 and later); a key the
    module does not know is then only a warning. Docker 20.10 has no C(--validate) and refuses an unknown key, or a value of
    the wrong JSON type, only when it starts, which keeps Docker down until the fleet.images.daemon role rolls back. For it the
    module keeps one table, as data, of the keys dockerd 20.10 to 27 knows on Linux and the kind of value each takes; it refuses
    an unknown key when C(dockerd --validate) does not run, and checks the values on every engine, for messages that say what
    to write instead.
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
  sample: {"data-root": "/var/lib/docker"}
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
      sample: [registry-mirrors]
    restart:
      description: Changed keys that take effect only after a restart.
      type: list
      elements: str
      sample: []
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
  sample: false
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
  sample: false
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
  sample: [/etc/docker/.daemon.json.k2j4x9q1.tmp]
removed_backups:
  description: Backups older than the O(backup_keep) newest, removed by this run.
  returned: when O(state=present)
  type: list
  elements: str
  sample: ["/etc/docker/daemon.json.2345.2024-04-01@10:00:00~"]
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
  sample: [/etc/docker/daemon.json]
dropin_restored:
  description: Whether O(state=rolled_back) put the drop-in back (then C(systemctl daemon-reload) ran).
  returned: when O(state=rolled_back)
  type: bool
  sample: false
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
  sample:
    path: /etc/systemd/system/docker.service.d/http-proxy.conf
    state: present
    changed: true
    created: true
    backup_file: null
    systemd_reloaded: true
  contains:
    path:
      description: Its path.
      type: str
      sample: /etc/systemd/system/docker.service.d/http-proxy.conf
    state:
      description: V(present) or V(absent) after this run.
      type: str
      sample: present
    changed:
      description: Whether this run wrote or removed it.
      type: bool
      sample: true
    created:
      description: Whether it did not exist before.
      type: bool
      sample: true
    backup_file:
      description: The copy of the previous drop-in, when one was made.
      type: str
      sample: "/etc/systemd/system/docker.service.d/http-proxy.conf.2345.2024-05-01@10:00:00~"
    systemd_reloaded:
      description: Whether C(systemctl daemon-reload) ran after the change.
      type: bool
      sample: true
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
      sample: unavailable
    binary:
      description: The dockerd binary used.
      type: str
      sample: /usr/sbin/dockerd
    message:
      description: What dockerd said, or why it did not run.
      type: str
      sample: dockerd 20.10.24 has no --validate
  sample: {"dockerd": "unavailable", "binary": "/usr/sbin/dockerd", "message": "dockerd 20.10.24 has no --validate"}
engine:
  description: What the module learnt about the engine.
  returned: success, with O(state=present)
  type: dict
  sample:
    version: "20.10.24"
    source: engine
    engine_version: "20.10.24"
    binary_version: "20.10.24"
    running_containers: 3
    live_restore: false
    error: null
  contains:
    version:
      description: The version used for version-dependent decisions.
      type: str
      sample: "20.10.24"
    source:
      description: Where that version came from, V(engine), V(dockerd binary) or V(unknown).
      type: str
      sample: engine
    engine_version:
      description: The running engine's version, V(null) when it did not answer.
      type: str
      sample: "20.10.24"
    binary_version:
      description: The installed dockerd's version, V(null) when unknown.
      type: str
      sample: "20.10.24"
    running_containers:
      description: Containers running in the engine, V(null) when it did not answer.
      type: int
      sample: 3
    live_restore:
      description: Whether the running engine has live-restore on, V(null) when it did not answer.
      type: bool
      sample: false
    error:
      description: Why the engine could not be asked, if it could not.
      type: str
      sample: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"
unit:
  description: What the module read from the engine's systemd unit.
  returned: success, with O(state=present)
  type: dict
  contains:
    name:
      description: The unit.
      type: str
      sample: docker.service
    files:
      description: The unit file and drop-ins read, in order; empty when the unit was not found.
      type: list
      elements: str
      sample: [/lib/systemd/system/docker.service, /etc/systemd/system/docker.service.d/10-lab.conf]
    exec_start_file:
      description: The file that sets the effective C(ExecStart).
      type: str
      sample: /etc/systemd/system/docker.service.d/10-lab.conf
    flags:
      description: dockerd's flags from C(ExecStart), environment expanded.
      type: list
      elements: str
      sample: ["-H fd://", "--containerd /run/containerd/containerd.sock"]
    reload:
      description: Whether the unit has C(ExecReload), so C(systemctl reload) sends SIGHUP.
      type: bool
      sample: true
    config_file:
      description: The C(--config-file) the unit passes, if any.
      type: str
      sample: /etc/docker/daemon.json
  sample:
    name: docker.service
    files: [/lib/systemd/system/docker.service, /etc/systemd/system/docker.service.d/10-lab.conf]
    exec_start_file: /etc/systemd/system/docker.service.d/10-lab.conf
    flags: ["-H fd://", "--containerd /run/containerd/containerd.sock"]
    reload: true
    config_file: null
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.images.plugins.module_utils.daemon_change import run_module
from ansible_collections.fleet.images.plugins.module_utils.daemon_json import LIST_MERGE_MODES
from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args


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
            list_merge=dict(type="str", choices=list(LIST_MERGE_MODES), default="replace"),
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
    run_module(module)


if __name__ == "__main__":
    main()
