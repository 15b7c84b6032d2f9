"""The ``supervisor-streamlog`` command: ``listen``, ``serve``, ``forward``, ``receive``,
``check``, ``tail``.

Parsing builds a namespace in :func:`build_parser` (testable on its own);
:func:`main` only dispatches, so it is the one module that may import every
side (capture, the sidecar, the forwarder, ``tail``).  Example::

    supervisor-streamlog check -c /etc/supervisor/supervisord.conf
    supervisor-streamlog tail -f web
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, List, Optional

from . import __version__

if TYPE_CHECKING:
    from .config import Config

#: Where supervisorctl looks for supervisord.conf, in its order.
DEFAULT_CONFIGS = (
    "supervisord.conf",
    "etc/supervisord.conf",
    "/etc/supervisord.conf",
    "/etc/supervisor/supervisord.conf",
)


def _config_option(
    parser: argparse.ArgumentParser,
    text: str = "file with the [streamlog] section (e.g. supervisord.conf)",
) -> None:
    """The ``-c FILE`` every long-running subcommand requires."""
    parser.add_argument("-c", "--config", required=True, metavar="FILE", help=text)


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
    _config_option(listen)

    serve = sub.add_parser(
        "serve",
        help="run the sidecar: live tail page, history API, WebSocket",
        description="Follow the [streamlog] files and serve them to browsers "
        "(address from bind = ..., default 127.0.0.1:9002).",
    )
    _config_option(serve)

    forward = sub.add_parser(
        "forward",
        help="send every record to syslog receivers (RELP, TCP, TLS), resumably",
        description="Read the [streamlog] files and deliver every record to the receivers "
        "listed in forward = ... (relp://host:port, tcp://host:port, tls://host:port), "
        "keeping per destination the offset of the last acknowledged record.",
        epilog="example: forward = relp://logs.example:2514 in [streamlog], then run "
        "supervisor-streamlog forward -c /etc/supervisor/supervisord.conf as a [program:]",
    )
    _config_option(forward)
    forward.add_argument(
        "--status",
        action="store_true",
        help="print how far behind each destination is, and exit (1 if behind)",
    )

    receive = sub.add_parser(
        "receive",
        help="the central sink: write what a central rsyslog receives (omprog) as host files",
        description="Read rsyslog omprog lines (template streamlog_receive) on stdin and write "
        "each forwarded record to <logdir>/<host>/, answering OK per message "
        "(confirmMessages); see docs/shipping.md, 'One page for many hosts'.",
    )
    _config_option(receive, "file with the central [streamlog] section (layout = hosts)")

    check = sub.add_parser(
        "check",
        help="validate the config and list what is captured",
        description="Validate [streamlog] and list, for every program in the supervisord "
        "config, what will and will not be captured, and why.",
    )
    _config_option(check, "the supervisord config file")

    tail = sub.add_parser(
        "tail",
        help="print the last lines of captured logs, merged by time",
        description="""\
Print the last lines of one or more processes' streamlog files, merged into
one timeline by record time (each process's own order kept), as
TIME [NAME] STREAM TEXT: NAME as supervisorctl shows it, only when several
processes are named. Pieces of a line are joined; a piece nothing follows
within --window (a prompt) is printed alone. SGR colours are kept for a
terminal and stripped otherwise (--color); any other escape sequence or
control character but tab is printed as text (e.g. \\x1b[2J), never raw.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""times (--since, --until): RFC 3339 (2026-12-02T14:05:00Z), local time
  (2026-12-02 14:05, 2026-12-02, 14:05), relative (--since=-5m, 10m, '1h ago', 2d),
  now, today, yesterday.

examples:
  supervisor-streamlog tail web                      last 10 lines of web
  supervisor-streamlog tail -f web worker            merged, then follow
  supervisor-streamlog tail -n all --since '1h ago' web
  supervisor-streamlog tail --since=-5m -f web worker
  supervisor-streamlog tail --since '2026-12-02 14:05' --until '2026-12-02 14:10' web
  supervisor-streamlog tail -n 50 --grep Traceback web worker
  supervisor-streamlog tail -E -i --grep 'time(out|d out)' -f web
  supervisor-streamlog tail --color=always web | less -R""",
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
        "-n",
        "--lines",
        default=None,
        metavar="N",
        help="how many lines of each process (default 10; all with --since), or 'all'",
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    tail.add_argument("--since", metavar="TIME", help="only lines at or after TIME")
    tail.add_argument("--until", metavar="TIME", help="only lines at or before TIME (not with -f)")
    tail.add_argument(
        "-g", "--grep", metavar="PATTERN", help="only lines containing PATTERN (colours ignored)"
    )
    tail.add_argument(
        "-E", "--grep-regex", action="store_true", help="PATTERN is a Python regular expression"
    )
    tail.add_argument("-i", "--ignore-case", action="store_true", help="match case-insensitively")
    tail.add_argument(
        "--color",
        "--colour",
        choices=("auto", "always", "never"),
        default="auto",
        help="keep the lines' SGR colours: auto (default) when stdout is a terminal",
    )
    tail.add_argument(
        "--window",
        type=float,
        default=50.0,
        metavar="MS",
        help="with -f, hold a live line at most MS milliseconds (default 50) waiting for an "
        "earlier one from another process, and a piece of a line as long for its rest",
    )
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
    if args.command == "forward" and config.layout == "hosts":
        sys.stderr.write(
            f"supervisor-streamlog: {config.source}: layout = hosts is a central logdir "
            "(receive writes it); forward reads a host's own logdir\n"
        )
        return 2
    if args.command == "forward":
        from .forward.forwarder import run as forward_run
        from .forward.forwarder import status as forward_status

        if args.status:
            return forward_status(config, sys.stdout)
        return forward_run(config)
    if args.command == "receive":
        from .forward.receive import run as receive_run

        return receive_run(config)
    if args.command == "serve":
        from .sidecar.server import run as serve_run

        return serve_run(config)
    return _tail(config, args)


def _tail(config: Config, args: argparse.Namespace) -> int:
    """Run ``tail`` with the parsed arguments (errors exit 2, as argparse's do)."""
    import re

    from .tail import parse_when, run

    def fail(message: str) -> int:
        sys.stderr.write(f"supervisor-streamlog tail: {message}\n")
        return 2

    try:
        since = None if args.since is None else parse_when(args.since)
        until = None if args.until is None else parse_when(args.until)
    except ValueError as exc:
        return fail(str(exc))
    if until is not None and args.follow:
        return fail("--until and -f exclude each other")
    count: Optional[int]
    if args.lines is None:
        count = None if since is not None else 10
    elif args.lines == "all":
        count = None
    else:
        try:
            count = int(args.lines)
        except ValueError:
            return fail(f"-n takes a number or 'all', not {args.lines!r}")
    grep = None
    if args.grep is not None:
        text = args.grep if args.grep_regex else re.escape(args.grep)
        try:
            grep = re.compile(text, re.IGNORECASE if args.ignore_case else 0)
        except re.error as exc:
            return fail(f"bad regular expression: {exc}")
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    try:
        return run(
            config,
            args.names,
            count,
            args.follow,
            sys.stdout,
            window=max(args.window, 0.0) / 1000,
            colour=colour,
            grep=grep,
            since=since,
            until=until,
        )
    except BrokenPipeError:  # | head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # Ctrl-C while reading the backlog
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
