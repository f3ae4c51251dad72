"""Offline stand-in for the get-pip.py that `ansible-test sanity --venv` downloads.

ansible-test fetches its pip bootstrap script from a host this network does not reach; it first
looks for a cached copy under ~/.ansible/test/cache/, where scripts/setup puts this file. Run as
__main__ inside a fresh virtual environment without pip, it bootstraps pip from the standard
library and then installs what ansible-test asked for from the configured package index.
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}


def main():
    ensurepip.bootstrap(upgrade=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null, which hides this machine's pip configuration
    # (index and CA bundle); every download would then fail.
    os.environ.pop("PIP_CONFIG_FILE", None)
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + pip_args)


if __name__ == "__main__":
    main()
