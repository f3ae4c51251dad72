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
