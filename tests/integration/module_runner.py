"""Run a module of this checkout the way Ansible runs it (module file plus arguments file).

A module of its own, not conftest.py, so that test files in any directory can import it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / ".build" / "collections"
COLLECTION_LINK = COLLECTIONS_ROOT / "ansible_collections" / "fleet" / "images"


def run_module(name, params, check_mode=False, diff=False, env=None, timeout=1800):
    """Run plugins/modules/<name>.py with `params` the way Ansible does and return its result dict.

    The result always has `failed` (bool) and `rc` (the module's exit code).
    """
    args = dict(params)
    args["_ansible_check_mode"] = check_mode
    args["_ansible_diff"] = diff
    args_file = COLLECTIONS_ROOT / ("args-%s-%d.json" % (name, os.getpid()))
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    module_path = COLLECTION_LINK / "plugins" / "modules" / ("%s.py" % name)
    run_env = dict(os.environ, PYTHONPATH=str(COLLECTIONS_ROOT))
    run_env.update(env or {})
    try:
        proc = subprocess.run(
            [sys.executable, str(module_path), str(args_file)],
            capture_output=True, text=True, env=run_env, timeout=timeout, check=False,
        )
    finally:
        args_file.unlink()
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise AssertionError("module %s printed no JSON result (rc=%s)\nstdout:%s\nstderr:%s" % (name, proc.returncode, proc.stdout, proc.stderr))
    result.setdefault("failed", proc.returncode != 0)
    result["rc"] = proc.returncode
    return result


def run_task(directory, module, args, check_mode=False, environment=None, timeout=600):
    """Run fleet.images.<module> as a task of a play on localhost (its action plugin included) and return
    (the task's result, ansible-playbook's output). The play is written into `directory`."""
    task = {"name": module, "fleet.images.%s" % module: args, "check_mode": check_mode}
    if environment:
        task["environment"] = environment
    playbook = Path(directory) / ("%s-play.json" % module)
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False")
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
                           str(playbook)], capture_output=True, text=True, env=env, check=False, timeout=timeout)
    try:
        return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"], done.stdout
    except (ValueError, KeyError, IndexError):
        raise AssertionError("no result (rc=%s)\n%s\n%s" % (done.returncode, done.stdout, done.stderr))


def with_action(result, action):
    """The `images` items of a module result (contract C2) whose action is `action`, in order."""
    return [item for item in result["images"] if item["action"] == action]
