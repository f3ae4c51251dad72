"""Command line of the local lab: python -m lab {engine,images,up,down,status}."""

from __future__ import annotations

import argparse

from . import engine, hosts, images
from .common import LabError, die


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("engine", help="install and start a Docker Engine on this machine if none answers")
    build = commands.add_parser("images", help="build, or reuse, the lab images")
    build.add_argument("--only", action="append", choices=images.DEFAULT_ORDER, help="build only this image (repeatable)")
    up = commands.add_parser("up", help="start lab hosts: systemd and their own Docker Engine each")
    up.add_argument("--count", type=int, default=2)
    up.add_argument("--prefix", default=hosts.DEFAULT_PREFIX)
    up.add_argument("--distro", choices=["bookworm", "trixie", "mixed"], default="mixed")
    down = commands.add_parser("down", help="remove lab hosts and their volumes")
    down.add_argument("--prefix", default=hosts.DEFAULT_PREFIX)
    status = commands.add_parser("status", help="list lab hosts")
    status.add_argument("--prefix", default=hosts.DEFAULT_PREFIX)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.command == "engine":
            engine.ensure()
        elif args.command == "images":
            engine.ensure()
            images.ensure(args.only)
        elif args.command == "up":
            engine.ensure()
            images.ensure(["host-bookworm", "host-trixie"] if args.distro == "mixed" else ["host-" + args.distro])
            hosts.print_table(hosts.start(args.count, args.prefix, args.distro))
        elif args.command == "down":
            hosts.stop(args.prefix)
        elif args.command == "status":
            hosts.print_table(hosts.status(args.prefix))
    except LabError as exc:
        die(str(exc))


if __name__ == "__main__":
    main()
