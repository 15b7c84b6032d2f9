"""The ``supervisor-streamlog`` command: ``listen``, ``serve``, ``forward``, ``check``, ``tail``.

Parsing builds a namespace in :func:`build_parser` (testable on its own);
:func:`main` only dispatches.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import __version__

#: Where supervisorctl looks for supervisord.conf, in its order.
DEFAULT_CONFIGS = (
    "supervisord.conf",
    "etc/supervisord.conf",
    "/etc/supervisord.conf",
    "/etc/supervisor/supervisord.conf",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="supervisor-streamlog",
        description="Timestamped, line-safe, rotated child logs for supervisord.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    listen = sub.add_parser(
        "listen",
        help="run as a supervisord event listener (listener mode)",
        description="Speak supervisord's event listener protocol on stdin/stdout and "
        "write every captured line to the [streamlog] files.",
    )
    listen.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="FILE",
        help="file with the [streamlog] section (e.g. supervisord.conf)",
    )

    serve = sub.add_parser(
        "serve",
        help="run the sidecar: live tail page, history API, WebSocket",
        description="Follow the [streamlog] files and serve them to browsers "
        "(address from bind = ..., default 127.0.0.1:9002).",
    )
    serve.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="FILE",
        help="file with the [streamlog] section (e.g. supervisord.conf)",
    )

    forward = sub.add_parser(
        "forward",
        help="send every record to syslog receivers (RELP, TCP, TLS), resumably",
        description="Read the [streamlog] files and deliver every record to the receivers "
        "listed in forward = ... (relp://host:port, tcp://host:port, tls://host:port), "
        "keeping per destination the offset of the last acknowledged record.",
        epilog="example: forward = relp://logs.example:2514 in [streamlog], then run "
        "supervisor-streamlog forward -c /etc/supervisor/supervisord.conf as a [program:]",
    )
    forward.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="FILE",
        help="file with the [streamlog] section (e.g. supervisord.conf)",
    )
    forward.add_argument(
        "--status",
        action="store_true",
        help="print how far behind each destination is, and exit (1 if behind)",
    )

    check = sub.add_parser(
        "check",
        help="validate the config and list what is captured",
        description="Validate [streamlog] and list, for every program in the supervisord "
        "config, what will and will not be captured, and why.",
    )
    check.add_argument(
        "-c", "--config", required=True, metavar="FILE", help="the supervisord config file"
    )

    tail = sub.add_parser(
        "tail",
        help="print the last lines of captured logs",
        description="Print the last records of one or more processes' streamlog files.",
    )
    tail.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="file with the [streamlog] section (default: the first of "
        + ", ".join(DEFAULT_CONFIGS)
        + ", as supervisorctl looks)",
    )
    tail.add_argument(
        "-n", "--lines", type=int, default=10, metavar="N", help="how many records (default 10)"
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    tail.add_argument("names", nargs="+", metavar="NAME", help="name or group:name")
    return parser


def default_config() -> Optional[str]:
    """The supervisord config file supervisorctl would find, if any."""
    for path in DEFAULT_CONFIGS:
        if os.path.exists(path):
            return path
    return None


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.config is None:
        args.config = default_config()
        if args.config is None:
            sys.stderr.write(
                "supervisor-streamlog: no config file found at "
                + ", ".join(DEFAULT_CONFIGS)
                + "; use -c FILE\n"
            )
            return 2
    if args.command == "check":
        from .check import main as check_main

        return check_main(args.config, sys.stdout, sys.stderr)

    from .config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"supervisor-streamlog: {exc}\n")
        return 2
    if args.command == "listen":
        from .capture.core import Capture
        from .capture.listener import run

        return run(Capture(config))
    if args.command == "forward":
        from .forward.forwarder import run as forward_run
        from .forward.forwarder import status as forward_status

        if args.status:
            return forward_status(config, sys.stdout)
        return forward_run(config)
    if args.command == "serve":
        from .sidecar.server import run as serve_run

        return serve_run(config)
    from .tail import run as tail_run

    return tail_run(config, args.names, args.lines, args.follow, sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
