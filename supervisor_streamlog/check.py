"""``supervisor-streamlog check -c supervisord.conf``: what will be captured, and why not.

It validates the ``[streamlog]`` section, reads the supervisord configuration
with supervisord's own parser, finds how streamlog is wired in (plugin or
listener) and lists every program: which streams are captured, where the file
goes, and for each stream that is not captured, the reason and the fix.
It changes nothing and starts nothing (one thread, reading files); its exit
status is 0 when all is well, 1 with warnings, 2 when the configuration is
invalid, so a deployment script can run it before a reload.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, TextIO

from .capture.plugin import capturing_message, make_rpcinterface
from .config import Config, ConfigError, load
from .ondisk.paths import display_name, log_path

PLUGIN_FACTORY = "supervisor_streamlog.plugin:make_rpcinterface"
LISTENER_COMMAND = "supervisor-streamlog"
#: The listener ``buffer_size`` docs/benchmarks.md found lossless for a
#: 1M-line burst from a line-per-write producer (8192 is enough only when every
#: captured program writes in blocks).  No size is safe for an endless flood.
RECOMMENDED_BUFFER_SIZE = 65536


@dataclass
class ProgramReport:
    """What happens to one process's output."""

    spec: str
    path: Optional[str]
    captured: List[str] = field(default_factory=list)
    reasons: List[str] = field(default_factory=list)


@dataclass
class Report:
    """The outcome of a check."""

    config: Config
    mode: Optional[str]
    programs: List[ProgramReport]
    warnings: List[str]
    #: Information, not warnings: what supervisord's log says at INFO when streamlog starts.
    info: List[str] = field(default_factory=list)


def _load_supervisor(path: str) -> Any:
    from supervisor.options import ServerOptions

    options = ServerOptions()
    options.configfile = path
    try:
        options.process_config(do_usage=False)
    except ValueError as exc:
        raise ConfigError(f"supervisord cannot use {path}: {exc}") from None
    return options


def _mode(options: Any) -> tuple:
    """(mode, listener group config or None)."""
    for _name, factory, _kwargs in options.configroot.supervisord.rpcinterface_factories or ():
        if factory is make_rpcinterface:
            return "plugin", None
    for group in options.process_group_configs:
        if not hasattr(group, "pool_events"):
            continue
        for process in group.process_configs:
            if LISTENER_COMMAND in process.command or "supervisor_streamlog" in process.command:
                return "listener", group
    return None, None


def inspect(path: str) -> Report:
    """Build the :class:`Report` for a supervisord config file."""
    config = load(path)
    options = _load_supervisor(os.path.abspath(path))
    mode, listener = _mode(options)
    warnings: List[str] = []
    if mode is None:
        warnings.append(
            "streamlog is not wired into this file: add an [rpcinterface:streamlog] "
            f"section with supervisor.rpcinterface_factory = {PLUGIN_FACTORY}, "
            "or an [eventlistener:streamlog] running `supervisor-streamlog listen`"
        )
    if mode == "plugin" and not options.configroot.supervisord.server_configs:
        warnings.append(
            "plugin mode needs an [unix_http_server] or [inet_http_server] section: "
            "supervisord loads rpcinterface plugins only with an HTTP server"
        )
    if listener is not None:
        names = {event.__name__ for event in listener.pool_events}
        if not any(name.startswith("ProcessLog") for name in names):
            warnings.append(
                f"[eventlistener:{listener.name}] events do not include PROCESS_LOG: "
                "no output will reach it"
            )
        if not any(name.startswith("ProcessState") for name in names):
            warnings.append(
                f"[eventlistener:{listener.name}] events do not include "
                "PROCESS_STATE: no start/exit records"
            )
        if listener.buffer_size < RECOMMENDED_BUFFER_SIZE:
            warnings.append(
                f"[eventlistener:{listener.name}] buffer_size = {listener.buffer_size}: "
                "supervisord drops the oldest events when it overflows; use at least "
                f"{RECOMMENDED_BUFFER_SIZE} (see docs/benchmarks.md), or plugin mode"
            )
    programs: List[ProgramReport] = []
    captured: List[str] = []
    skipped: List[str] = []
    for group in options.process_group_configs:
        is_listener = hasattr(group, "pool_events")
        for process in group.process_configs:
            spec = f"{group.name}:{process.name}"
            item = ProgramReport(spec, None)
            programs.append(item)
            if is_listener:
                item.reasons.append("an event listener: its stdout is the protocol channel")
                continue
            label = display_name(group.name, process.name)
            if not config.captures(group.name, process.name):
                item.reasons.append(f"not matched by programs = {' '.join(config.programs)}")
                skipped.append(label)
                continue
            captured.append(label)
            item.path = log_path(config.logdir, group.name, process.name)
            for stream in ("stdout", "stderr"):
                if stream == "stderr" and process.redirect_stderr:
                    item.reasons.append(
                        "stderr: merged into stdout (redirect_stderr = true), "
                        "captured tagged stdout"
                    )
                    continue
                enabled = getattr(process, f"{stream}_events_enabled")
                if mode == "plugin" or (mode == "listener" and enabled):
                    item.captured.append(stream)
                elif mode == "listener":
                    item.reasons.append(
                        f"{stream}: not captured: {stream}_events_enabled = "
                        "false (listener mode needs it true)"
                    )
                else:
                    item.reasons.append(f"{stream}: not captured: streamlog is not wired in")
    info = [capturing_message(captured, skipped, config.logdir)] if mode else []
    return Report(config, mode, programs, warnings, info)


def render(report: Report, out: TextIO) -> None:
    """Print a report for people."""
    config = report.config
    out.write(f"config: {config.source} ([streamlog] valid)\n")
    out.write(f"mode: {report.mode or 'none'}\n")
    out.write(f"logdir: {config.logdir}\n")
    out.write(
        f"format: {config.format}, maxbytes: {config.maxbytes}, backups: "
        f"{config.backups}, compress: {str(config.compress).lower()}\n"
    )
    for item in report.programs:
        captured = "+".join(item.captured) if item.captured else "nothing"
        line = f"  {item.spec}: captures {captured}"
        if item.path and item.captured:
            line += f" -> {item.path}"
        out.write(line + "\n")
        for reason in item.reasons:
            out.write(f"      {reason}\n")
    for line in report.info:
        out.write(f"info: {line}\n")
    for warning in report.warnings:
        out.write(f"warning: {warning}\n")


def main(path: str, out: TextIO, err: TextIO) -> int:
    """Exit status: 0 fine, 1 valid but warnings, 2 invalid."""
    try:
        report = inspect(path)
    except ConfigError as exc:
        err.write(f"supervisor-streamlog: {exc}\n")
        return 2
    render(report, out)
    return 1 if report.warnings else 0
