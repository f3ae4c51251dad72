# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""daemon_config's work, step by step: the request, the files, the host, the plan, its checks, the writes, the result.

Each step is a short function over plain values (types.SimpleNamespace), so the order of the run
reads in run(): every check before any write, daemon.json written last.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from ansible_collections.fleet.images.plugins.module_utils import atomic_file
from ansible_collections.fleet.images.plugins.module_utils import daemon_json as dj
from ansible_collections.fleet.images.plugins.module_utils import daemon_record as record
from ansible_collections.fleet.images.plugins.module_utils import systemd_unit
from ansible_collections.fleet.images.plugins.module_utils import daemon_host as hostio
from ansible_collections.fleet.images.plugins.module_utils.daemon_schema import check_proxies, find_flag_conflicts, validate_config
from ansible_collections.fleet.images.plugins.module_utils.dockerd_flags import config_file_flag, dockerd_flags
from ansible_collections.fleet.images.plugins.module_utils import registry_host
from ansible_collections.fleet.images.plugins.module_utils.url_secrets import mask_credentials, mask_url

DEDICATED_OPTIONS = (("registry_mirrors", "registry-mirrors"), ("insecure_registries", "insecure-registries"), ("proxies", "proxies"))


def run_module(module):
    """Run daemon_config for its state and exit with its result, or fail with a message for the operator."""
    path = module.params["path"]
    try:
        if module.params["backup_keep"] < 1:
            raise hostio.Refused("backup_keep must be 1 or more (the newest backup is what a rollback may need), not %d"
                                 % module.params["backup_keep"])
        if module.params["state"] == "applied":
            result = record.record_applied(module)
        elif module.params["state"] == "rolled_back":
            result = record.roll_back(module)
        else:
            result = run(module)
    except hostio.Refused as exc:
        module.fail_json(msg=record.scrub(module, str(exc)), problems=[record.scrub(module, item) for item in exc.problems], path=path,
                         **exc.details)
    except hostio.WriteFailed as exc:
        module.fail_json(msg=record.scrub(module, str(exc)), path=path)
    except (OSError, dj.DaemonJsonError) as exc:
        module.fail_json(msg=record.scrub(module, "While changing %s on %s: %s" % (path, hostio.HOSTNAME, exc)), path=path)
    module.exit_json(**result)


def run(module):
    """state=present: merge the request into daemon.json (and the proxy drop-in), checked before anything is written."""
    params = module.params
    hide_proxy_passwords(module)
    request = read_request(params)
    stale = remove_stale_temps(params, module.check_mode)
    disk = read_disk(module, params)
    host = probe_host(module, params, request, disk)
    plan = plan_change(module, params, request, disk, host)
    check_plan(params, request, disk, host, plan)
    validation = validate_with_dockerd(module, params, disk, host, plan)
    written = write_change(module, params, disk, plan)
    warnings = disk.warnings + host.warnings + plan.warnings + restart_warning(host, plan)
    for warning in warnings:
        module.warn(record.scrub(module, warning))
    return build_result(params, disk, host, plan, validation, written, stale)


# ---------------------------------------------------------------------------------------------
# The request


def hide_proxy_passwords(module):
    """Register the passwords inside proxy URLs as secrets, so Ansible masks them in every output,
    including the echoed module arguments."""
    given = list((module.params["proxies"] or {}).values())
    in_settings = (module.params["settings"] or {}).get("proxies")
    if isinstance(in_settings, dict):
        given += list(in_settings.values())
    record.collect_secrets(module, given)


def requested_overlay(params):
    """The daemon.json keys the options ask for, without proxies (they depend on the method)."""
    settings = params["settings"] or {}
    problems = ["settings.%s is null: to drop a key, list it in remove" % name for name, value in settings.items() if value is None]
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
    problem = check_proxies(wanted)
    if problem:
        problems.append("proxies %s" % problem)
    return wanted


def ca_problems(params):
    problems = []
    for registry, ca_cert in sorted(params["registry_ca_certs"].items()):
        problem = registry_host.registry_address_problem(registry, params["certs_d"])
        if problem:
            problems.append("registry_ca_certs: %s" % problem)
        elif not isinstance(ca_cert, str) or not registry_host.looks_like_pem_certificate(ca_cert):
            problems.append("registry_ca_certs: the CA for %s is not PEM certificate text (-----BEGIN CERTIFICATE----- ...)" % registry)
    return problems


def read_request(params):
    """The overlay, the wanted proxies and the keys to remove; Refused listing every contradiction."""
    overlay, problems = requested_overlay(params)
    proxies = proxies_option(params, problems)
    remove = list(params["remove"])
    for item in remove:
        if dj.resolve_path(overlay, item) is not None or (item.split(".", 1)[0] == "proxies" and proxies is not None):
            problems.append("'%s' is both set and removed: give it in one place only" % item)
    problems += ca_problems(params)
    if problems:
        raise hostio.Refused("%s: the change was refused and nothing was written:\n- %s" % (params["path"], "\n- ".join(problems)), problems)
    return SimpleNamespace(overlay=overlay, proxies=proxies, remove=remove, remove_proxies="proxies" in remove)


def merged(current, request, params):
    return dj.remove_paths(dj.merge(current, request.overlay, params["list_merge"]), request.remove)[0]


# ---------------------------------------------------------------------------------------------
# The files and the host


def remove_stale_temps(params, check_mode):
    """The temporary files an interrupted run left next to daemon.json or the drop-in, removed outside check mode."""
    targets = (params["path"], params["dropin"])
    stale = [name for target in targets for name in atomic_file.stale_temps(target)]
    if stale and not check_mode:
        for target in targets:
            atomic_file.remove_stale_temps(target)
    return stale


def read_disk(module, params):
    """What daemon.json and the drop-in hold now, and what the engine last ran with (the record)."""
    path, dropin_path = params["path"], params["dropin"]
    text, dropin_text = hostio.read_file(path), hostio.read_file(dropin_path)
    record.collect_secrets(module, text, dropin_text)
    current, invalid_reason, warnings = {}, None, []
    if text is not None:
        try:
            current, warnings = dj.parse_config(text, path)
        except dj.ParseError as exc:
            if not params["replace_invalid"]:
                raise hostio.Refused("%s\nNothing was written. Fix the file, or set replace_invalid=true to replace it (a backup is kept)." % exc,
                                     [str(exc)], line=exc.line, column=exc.column)
            invalid_reason = str(exc)
    applied = record.read_record(module, path)
    pending_keys, dropin_pending = record.pending_changes(applied, current, dropin_text, path) if invalid_reason is None else ([], False)
    return SimpleNamespace(path=path, text=text, existed=text is not None, current=current, invalid_reason=invalid_reason,
                           warnings=list(warnings), dropin_path=dropin_path, dropin_text=dropin_text, record=applied,
                           pending_keys=pending_keys, dropin_pending=dropin_pending, pending=bool(pending_keys or dropin_pending))


def probe_host(module, params, request, disk):
    """The unit's flags, the installed dockerd and the running engine. When the file already holds what is
    asked, the engine runs it and no proxy method has to be picked, nothing will be written: dockerd and
    the engine are not asked, which is most of a rerun's cost."""
    unit_info, unit_argv = hostio.read_unit(module, params["unit"])
    host = SimpleNamespace(unit=unit_info, flags=dockerd_flags(unit_argv), binary=None, binary_version=None, binary_version_text=None,
                           has_validate=False, warnings=[])
    settled = (disk.existed and disk.invalid_reason is None and request.proxies is None and not request.remove_proxies and not disk.pending
               and merged(disk.current, request, params) == disk.current)
    if settled:
        host.engine = dict(engine_version=None, running_containers=None, live_restore=None,
                           error="not asked: %s already holds the requested settings" % disk.path)
    else:
        host.binary = hostio.find_dockerd(module, unit_argv)
        host.binary_version, host.binary_version_text, host.has_validate = hostio.probe_dockerd(module, host.binary)
        host.engine = hostio.ask_engine(params)
    host.check_version = version_for_checks(host.engine, host.binary_version)
    host.config_file = config_file_flag(host.flags)
    if host.config_file and os.path.realpath(host.config_file) != os.path.realpath(disk.path):
        host.warnings.append("%s starts dockerd with --config-file %s: dockerd does not read %s, so this change has no effect on it"
                             % (unit_info.exec_start_file, host.config_file, disk.path))
    return host


def version_for_checks(engine, binary_version):
    """The lowest version known: the running engine reloads the file, the installed binary reads it at the next start."""
    known = [version for version in (dj.parse_version(engine["engine_version"]), binary_version) if version is not None]
    return min(known) if known else None


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
    raise hostio.Refused("proxy_method=auto cannot tell the engine's version: the engine did not answer (%s) and no dockerd binary was found. "
                         "Set proxy_method to daemon_json (Docker 23+) or systemd. Nothing was written." % engine["error"])


# ---------------------------------------------------------------------------------------------
# The plan and its checks


def plan_change(module, params, request, disk, host):
    """The candidate daemon.json and drop-in, what changes and what the engine needs for it."""
    plan = SimpleNamespace(candidate=merged(disk.current, request, params), method=None, dropin_wanted=disk.dropin_text, warnings=[])
    if request.proxies is not None:
        plan.method = pick_proxy_method(module, params["proxy_method"], host.engine, host.binary_version)
        place_proxies(plan, request.proxies, disk)
    elif request.remove_proxies:
        plan.dropin_wanted = None
    plan.keys = dj.changed_keys(disk.current, plan.candidate)
    plan.file_changes = (not disk.existed and bool(plan.candidate)) or disk.invalid_reason is not None or (
        disk.existed and plan.candidate != disk.current)
    plan.dropin_changes = plan.dropin_wanted != disk.dropin_text
    plan.needs, plan.needs_keys = dj.classify(sorted(set(plan.keys) | set(disk.pending_keys)),
                                              extra_restart=["proxies"] if plan.dropin_changes or disk.dropin_pending else ())
    plan.new_text = dj.render_config(plan.candidate)
    # the file dockerd will read: the candidate, or the unapplied file on disk
    plan.to_apply = plan.new_text if plan.file_changes else (disk.text if disk.pending_keys else None)
    return plan


def place_proxies(plan, proxies, disk):
    """Put the proxies where plan.method says: daemon.json's proxies object, or the drop-in."""
    if plan.method == "daemon_json":
        plan.candidate["proxies"] = proxies
        if disk.dropin_text is not None and systemd_unit.is_managed(disk.dropin_text):
            plan.dropin_wanted = None
        elif disk.dropin_text is not None and systemd_unit.parse_proxy_dropin(disk.dropin_text):
            plan.warnings.append("%s, which this module did not write, also sets proxies in dockerd's environment; "
                                 "daemon.json's proxies take precedence, but remove it to keep one source" % disk.dropin_path)
    else:
        plan.candidate.pop("proxies", None)
        plan.dropin_wanted = systemd_unit.render_proxy_dropin(proxies)


def check_plan(params, request, disk, host, plan):
    """Every check on the whole candidate (it is what dockerd reads at its next start, whatever restarts it); Refused when one fails."""
    must_be_valid = set(plan.keys) | set(request.overlay) | set(disk.pending_keys) | ({"proxies"} if plan.method == "daemon_json" else set())
    report = validate_config(plan.candidate, must_be_valid, host.check_version,
                             unknown_keys_checked_elsewhere=params["validate"] and host.has_validate)
    plan.warnings.extend(report.warnings)
    unit_file = host.unit.exec_start_file if host.unit else None
    conflicts = find_flag_conflicts(plan.candidate, host.flags, unit_file, hostio.HOSTNAME)
    errors = list(report.errors) + [message for dummy, dummy2, message in conflicts]
    if errors:
        raise hostio.Refused("%s: the change was refused and nothing was written:\n- %s" % (disk.path, "\n- ".join(errors)), errors)
    record.refused_before(disk.record, disk.path, plan.to_apply, params["retry_refused"])


def validate_with_dockerd(module, params, disk, host, plan):
    """Check the file dockerd will read with `dockerd --validate` where it has it; Refused when dockerd refuses it."""
    validation = dict(dockerd="not_needed", binary=host.binary, message="nothing to write")
    if plan.to_apply is None:
        return validation
    if not params["validate"]:
        validation.update(dockerd="skipped", message="validate=false")
    elif not host.binary:
        validation.update(dockerd="not_found", message="no dockerd binary found; only the module's own checks ran")
    elif not host.has_validate:
        validation.update(dockerd="unavailable", message="dockerd %s has no --validate; only the module's own checks ran"
                          % (dj.format_version(host.binary_version) if host.binary_version else "(version unknown)"))
    else:
        passed, said = hostio.dockerd_validate(module, host.binary, plan.to_apply, disk.path)
        validation.update(dockerd="passed" if passed else "failed", message=said)
        if not passed:
            what = ("the new %s, which was not written" % disk.path if plan.file_changes
                    else "%s on disk, which the engine has not applied yet" % disk.path)
            raise hostio.Refused("dockerd --validate on %s refused %s: %s" % (hostio.HOSTNAME, what, said), [said], validation=validation)
    return validation


def restart_warning(host, plan):
    """A change that turns live-restore on is applied by a reload before the restart (the daemon role
    does), which keeps the containers: no warning then."""
    engine = host.engine
    if plan.needs != "restart" or not engine["running_containers"] or engine["live_restore"] or plan.candidate.get("live-restore") is True:
        return []
    return ["Applying this change needs a Docker restart (%s) and live-restore is off: a plain restart stops the %s running container(s). "
            "Turning live-restore on first (a reload) would keep them running." % (", ".join(plan.needs_keys["restart"]), engine["running_containers"])]


# ---------------------------------------------------------------------------------------------
# The writes: the files Docker reads at once or only after a restart first, daemon.json last, so a
# failure on the way leaves daemon.json as the engine runs it.


def write_change(module, params, disk, plan):
    check_mode = module.check_mode
    # A record of what the engine runs (the files as they are now, when there is none yet) lets a
    # rerun see what is written but not applied.
    if (plan.file_changes or plan.dropin_changes) and disk.record is None and not check_mode:
        record.write_record(module, disk.path, disk.text, disk.dropin_text)
    # Docker reads these at each connection: they never change what the engine needs.
    trusted = [registry for registry, ca_cert in sorted(params["registry_ca_certs"].items())
               if hostio.write_ca(registry_host.docker_ca_path(registry, params["certs_d"]), ca_cert, check_mode)]
    dropin, pruned = write_dropin(module, params, disk, plan)
    backup_file, pruned_backups = write_daemon_json(module, params, disk, plan)
    return SimpleNamespace(trusted=trusted, dropin=dropin, backup_file=backup_file, pruned=pruned + pruned_backups)


def write_dropin(module, params, disk, plan):
    path = disk.dropin_path
    result = dict(path=path, state="present" if plan.dropin_wanted is not None else "absent", changed=plan.dropin_changes,
                  created=plan.dropin_changes and disk.dropin_text is None, backup_file=None, systemd_reloaded=False)
    pruned = []
    if plan.dropin_changes and not module.check_mode:
        if disk.dropin_text is not None and params["backup"]:
            result["backup_file"], pruned = hostio.make_backup(path, params["backup_keep"])
        if plan.dropin_wanted is None:
            hostio.remove_file(path)
        else:
            hostio.put_file(path, plan.dropin_wanted)
        result["systemd_reloaded"] = hostio.daemon_reload(module, path)
    return result, pruned


def write_daemon_json(module, params, disk, plan):
    """(the backup made, the old backups removed); an invalid file replaced is always backed up first."""
    backup_file, pruned = None, []
    if plan.file_changes and not module.check_mode:
        if disk.existed and (params["backup"] or disk.invalid_reason is not None):
            backup_file, pruned = hostio.make_backup(disk.path, params["backup_keep"])
        hostio.put_file(disk.path, plan.new_text)
    return backup_file, pruned


# ---------------------------------------------------------------------------------------------
# The result


def build_result(params, disk, host, plan, validation, written, stale):
    result = dict(
        changed=bool(plan.file_changes or plan.dropin_changes or written.trusted or stale or written.pruned),
        registry_ca_certs=written.trusted,
        path=disk.path,
        config=mask_credentials(plan.candidate),
        previous_config=mask_credentials(disk.current) if disk.existed and disk.invalid_reason is None else None,
        changed_keys=plan.keys,
        needs=plan.needs,
        needs_keys=plan.needs_keys,
        pending=disk.pending,
        pending_keys=sorted(set(disk.pending_keys) | ({"proxies"} if disk.dropin_pending else set())),
        proxy_method=plan.method,
        created=bool(plan.file_changes and not disk.existed),
        dropin=written.dropin,
        validation=validation,
        engine=engine_result(host),
        unit=unit_result(params, host),
        removed_temp_files=stale,
        removed_backups=written.pruned,
        applied_record=params["applied_record"],
        diff=diff_result(disk, plan),
    )
    if written.backup_file:
        result["backup_file"] = written.backup_file
    if disk.invalid_reason is not None and plan.file_changes:
        result["replaced_invalid"] = disk.invalid_reason
    return result


def diff_result(disk, plan):
    diff = []
    if plan.file_changes:
        before = "(not valid JSON, not shown: %s)\n" % disk.invalid_reason if disk.invalid_reason is not None else (
            dj.render_config(mask_credentials(disk.current)) if disk.existed else "")
        diff.append(dict(before_header=disk.path, after_header=disk.path, before=before, after=dj.render_config(mask_credentials(plan.candidate))))
    if plan.dropin_changes:
        diff.append(dict(before_header=disk.dropin_path, after_header=disk.dropin_path, before=mask_url(disk.dropin_text or ""),
                         after=mask_url(plan.dropin_wanted or "")))
    return diff


def engine_result(host):
    engine = host.engine
    return dict(
        version=dj.format_version(host.check_version) if host.check_version else None,
        source="engine" if engine["engine_version"] else ("dockerd binary" if host.binary_version else "unknown"),
        engine_version=engine["engine_version"],
        binary_version=host.binary_version_text,
        running_containers=engine["running_containers"],
        live_restore=engine["live_restore"],
        error=engine["error"],
    )


def unit_result(params, host):
    unit = host.unit
    return dict(
        name=params["unit"],
        files=list(unit.files) if unit else [],
        exec_start_file=unit.exec_start_file if unit else None,
        flags=[mask_url("%s %s" % (flag.flag, flag.value) if flag.value else flag.flag) for flag in host.flags],
        reload=bool(unit and unit.exec_reload),
        config_file=host.config_file,
    )
