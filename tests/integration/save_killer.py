"""Run image_save as Ansible runs it, SIGKILLed at a chosen point between two of its writes (fault injection).

A sitecustomize.py on the module's PYTHONPATH wraps flock, fsync, link and replace; FI_KILL_AT
names the point: ``locked`` (the bundle lock taken), ``tarball-written`` / ``tarball-renamed``
(version 1), ``blob-written`` / ``blob-linked`` / ``index-renamed`` (version 2), ``manifest-renamed``,
``sums-renamed``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from module_runner import COLLECTION_LINK, COLLECTIONS_ROOT

KILL_HOOK = '''
import fcntl, os, signal
point = os.environ.get("FI_KILL_AT")
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if point == "locked":
    _flock = fcntl.flock
    def flock(fd, operation):
        _flock(fd, operation)
        die()
    fcntl.flock = flock
_fsync, _replace, _link = os.fsync, os.replace, os.link
def fsync(fd):
    _fsync(fd)
    name = os.readlink("/proc/self/fd/%d" % fd)
    if (point == "tarball-written" and name.endswith(".tmp") and "/images/" in name) or (point == "blob-written" and "/.blob." in name):
        die()
def link(source, target, *args, **kwargs):
    _link(source, target, *args, **kwargs)
    if point == "blob-linked":
        die()
RENAMED = {"manifest-renamed": "bundle.json", "sums-renamed": "SHA256SUMS", "index-renamed": "index.json"}
def replace(source, target, *args, **kwargs):
    _replace(source, target, *args, **kwargs)
    if (point == "tarball-renamed" and "/images/" in str(target)) or os.path.basename(str(target)) == RENAMED.get(point):
        die()
os.fsync, os.replace, os.link = fsync, replace, link
'''


def run_killed(params, point, tmp_path):
    """Run image_save with `params`, killed at `point`; return its exit status (-SIGKILL when the point was reached)."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(KILL_HOOK)
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(params, _ansible_check_mode=False, _ansible_diff=False)}))
    env = dict(os.environ, PYTHONPATH="%s:%s" % (hook, COLLECTIONS_ROOT), FI_KILL_AT=point)
    proc = subprocess.run([sys.executable, str(COLLECTION_LINK / "plugins" / "modules" / "image_save.py"), str(args_file)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    return proc.returncode
