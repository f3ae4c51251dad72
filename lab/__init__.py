"""The local lab: a Docker Engine on this machine, lab images built from Debian packages, and lab
hosts (containers running systemd and their own Docker Engine) that stand in for a fleet.

Run as ``python -m lab --help`` from the repository root.
"""
