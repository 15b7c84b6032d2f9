"""Plugin mode: capture inside supervisord, from its own event callbacks.

Add to supervisord.conf (supervisord needs an ``[unix_http_server]`` or
``[inet_http_server]`` section, as for supervisorctl)::

    [rpcinterface:streamlog]
    supervisor.rpcinterface_factory = supervisor_streamlog.plugin:make_rpcinterface
    ; config = /etc/supervisor/streamlog.conf   ; default: this file

    [streamlog]
    logdir = /var/log/supervisor/streamlog

supervisord calls the factory once per HTTP server section and again after
every SIGHUP, after clearing every event subscription.  So the factory looks
for its subscription in ``events.callbacks`` (not a module flag), subscribes
once, and closes the previous load's files when a reload made a new one.

The callbacks run on supervisord's main loop: they never raise (the core
contains and reports failures, once per kind) and never wait for anything but
the file write supervisord itself would have done.  Timers (lines that wait
for a newline, batched writes, retries after a disk error) and gzip run on
threads started on ``SupervisorRunningEvent`` -- threads started earlier die
when supervisord daemonizes -- and the core is guarded by one lock.

A program's exit is written promptly: supervisord reaps children only
between two ``poll()`` sleeps that a signal does not cut short;
:class:`SignalWake` makes a pending signal end the sleep (see there for why
that changes nothing else supervisord does).

Output events are turned on for captured programs without touching the
``ProcessConfig`` values (``supervisorctl update`` compares them and would
restart every program): the config object's ``make_dispatchers`` is wrapped,
on the STARTING event, to set the flag on the dispatchers it makes.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from supervisor import events

from ..config import Config, ConfigError, load
from ..ondisk.paths import display_name
from .core import Capture, ReportMessage, status_fields

#: How often the timer thread runs the core's timers.
TICK_INTERVAL = 0.1

_STATES = {
    name[len("PROCESS_STATE_") :]: typ
    for name, typ in vars(events.EventTypes).items()
    if name.startswith("PROCESS_STATE_") and name != "PROCESS_STATE"
}
_STATE_BY_TYPE = {typ: name for name, typ in _STATES.items()}

#: The plugin of the current supervisord load, to close it when a reload makes a new one.
_current: List[Plugin] = []


_registered: List[Callable[[], None]] = []


def _close_at_exit() -> None:
    """supervisord exits after its last STOPPED event: write what is unfinished
    (partial lines, batches) before the interpreter goes."""
    for plugin in _current:
        plugin.close()


def capturing_message(captured: List[str], skipped: List[str], logdir: str) -> str:
    """What streamlog captures, as supervisord's log says it at start-up (at INFO)
    and ``supervisor-streamlog check`` repeats it: one wording for both."""
    text = f"streamlog: capturing {', '.join(sorted(captured)) or 'nothing'} into {logdir}"
    if skipped:
        text += f"; not matched by programs: {', '.join(sorted(skipped))}"
    return text


class SignalWake:
    """Ends supervisord's ``poll()`` sleep when a signal arrives (SIGCHLD above all).

    supervisord handles signals -- reaping exited children on SIGCHLD, which
    emits their EXITED events -- once per turn of its loop, after a ``poll()``
    of up to 1 s that a signal does not cut short (PEP 475 retries it).  This
    is the self-pipe trick with Python's own hook: ``signal.set_wakeup_fd``
    makes the interpreter write a byte to a pipe whenever a signal arrives (its
    handlers stay supervisord's), and the pipe's read end sits in supervisord's
    socket map like its HTTP channels, so ``poll()`` returns at once; the loop
    then does what it would have done at the end of the sleep, only sooner.
    No event, state or timer of supervisord changes, for any program.

    Only one wakeup fd exists per process: if something else holds it, this
    steps aside (and exits are late as before).  It is installed when
    supervisord runs and removed when it starts stopping, before a reload
    closes every descriptor (``cleanup_fds``) and could give the pipe's
    numbers to other files.
    """

    def __init__(self, socket_map: Dict[int, Any]) -> None:
        self.socket_map = socket_map
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        if previous != -1:  # someone else's: leave it to them
            signal.set_wakeup_fd(previous)
            self._close_fds()
            self.installed = False
            return
        self.installed = True
        socket_map[self.read_fd] = self

    # What supervisord's loop asks of a dispatcher in its socket map.
    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        """Drain the pipe: the wake-up has done its work by now."""
        try:
            while os.read(self.read_fd, 4096):
                pass
        except OSError:
            pass

    def handle_error(self) -> None:
        pass

    def remove(self) -> None:
        """Give the wakeup fd back and leave the socket map (main thread only)."""
        if not self.installed:
            return
        self.installed = False
        if self.socket_map.get(self.read_fd) is self:
            del self.socket_map[self.read_fd]
        current = signal.set_wakeup_fd(-1)
        if current != self.write_fd:
            signal.set_wakeup_fd(current)  # not ours any more: put it back
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _process_names(process: Any) -> tuple:
    name = process.config.name
    group = process.group.config.name if process.group is not None else name
    return group, name


class Plugin:
    """Owns the capture core for one supervisord load and feeds it events."""

    def __init__(self, supervisord: Any, config: Config) -> None:
        self.supervisord = supervisord
        self.config = config
        logger = supervisord.options.logger
        self.log: ReportMessage = lambda message: logger.warn(f"streamlog: {message}")
        # Timers run on the timer thread, not on supervisord's main loop.
        self.capture = Capture(config, report=self.log, tick_on_log=False)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.timer: Optional[threading.Thread] = None
        self.wake: Optional[SignalWake] = None
        self.subscriptions = [
            (events.ProcessLogEvent, self.on_log),
            (events.ProcessStateEvent, self.on_state),
            (events.SupervisorRunningEvent, self.on_running),
            (events.SupervisorStoppingEvent, self.on_stopping),
            (events.ProcessGroupRemovedEvent, self.on_group_removed),
        ]
        self.namespace = StreamlogNamespace(self)

    # ------------------------------------------------------------ wiring

    def subscribed(self) -> bool:
        return any(callback == self.on_log for _, callback in events.callbacks)

    def subscribe(self) -> None:
        for event_type, callback in self.subscriptions:
            events.subscribe(event_type, callback)

    def captures(self, process: Any) -> bool:
        group, name = _process_names(process)
        return self.config.captures(group, name)

    def enable_events(self, process: Any) -> None:
        """Make the next dispatchers of ``process`` emit output events."""
        config = process.config
        if getattr(config, "_streamlog_wrapped", False):
            return
        original = config.make_dispatchers

        def make_dispatchers(proc: Any) -> Any:
            dispatchers, pipes = original(proc)
            if self.captures(proc):
                for dispatcher in dispatchers.values():
                    if getattr(dispatcher, "channel", None) in ("stdout", "stderr"):
                        dispatcher.stdout_events_enabled = True
                        dispatcher.stderr_events_enabled = True
            return dispatchers, pipes

        # Instance attributes: ProcessConfig.__eq__ compares only its options.
        config.make_dispatchers = make_dispatchers
        config._streamlog_wrapped = True

    # ------------------------------------------------------------ callbacks

    def on_log(self, event: Any) -> None:
        try:
            group, name = _process_names(event.process)
            with self.lock:
                self.capture.log(group, name, event.channel, event.pid or 0, event.data)
        except Exception as exc:  # never raise into supervisord's loop
            self.capture.contain("plugin.log", exc)

    def on_state(self, event: Any) -> None:
        try:
            process = event.process
            state = _STATE_BY_TYPE.get(type(event))
            if state is None:
                return
            if state == "STARTING" and self.captures(process):
                self.enable_events(process)
            extra: Dict[str, Any] = dict(event.extra_values)
            pid = int(extra.get("pid") or 0)
            fields = status_fields(
                state,
                pid=pid if "pid" in extra else None,
                tries=int(extra["tries"]) if "tries" in extra else None,
                exitstatus=int(process.exitstatus or 0),
                expected=bool(event.expected),
            )
            group, name = _process_names(process)
            with self.lock:
                self.capture.state(group, name, state, pid, fields)
        except Exception as exc:
            self.capture.contain("plugin.state", exc)

    def on_running(self, event: Any) -> None:
        """supervisord has daemonized (if it does): now threads may start."""
        try:
            if self.capture.compressor is not None:
                self.capture.compressor.start()
            if self.wake is None:
                self.wake = SignalWake(self.supervisord.options.get_socket_map())
            if self.timer is None:
                self.timer = threading.Thread(
                    target=self._tick_loop, name="streamlog-timer", daemon=True
                )
                self.timer.start()
            self._announce()
        except Exception as exc:
            self.capture.contain("plugin.running", exc)

    def on_group_removed(self, event: Any) -> None:
        """``supervisorctl update`` removed a group: close its files."""
        try:
            with self.lock:
                self.capture.forget_group(event.group)
        except Exception as exc:
            self.capture.contain("plugin.group_removed", exc)

    def on_stopping(self, event: Any) -> None:
        """Shutdown or reload began; processes are still stopping."""
        # Files stay open: the STOPPED events that follow still write records.
        # close() (next load, or process exit) finishes the job.
        try:
            if self.wake is not None:
                self.wake.remove()  # see SignalWake: before a reload's cleanup_fds
        except Exception as exc:
            self.capture.contain("plugin.stopping", exc)

    def _announce(self) -> None:
        captured: List[str] = []
        skipped: List[str] = []
        for group in self.supervisord.process_groups.values():
            for process in group.processes.values():
                if hasattr(group.config, "pool_events"):
                    continue
                label = display_name(group.config.name, process.config.name)
                if self.captures(process):
                    captured.append(label)
                    # Its writer now, not at its first line: making one recovers
                    # what a crash or the previous load left half done (a killed
                    # compression's .gz.tmp, plain backups still to compress),
                    # also for a program that never writes again.
                    with self.lock:
                        self.capture.process(*_process_names(process))
                else:
                    skipped.append(label)
        # Information, not a warning: a WARN in supervisord's log should mean
        # something is wrong.
        self.supervisord.options.logger.info(
            capturing_message(captured, skipped, self.config.logdir)
        )

    def _tick_loop(self) -> None:
        while not self.stop_event.wait(TICK_INTERVAL):
            with self.lock:
                if self.stop_event.is_set():
                    return  # closed while this tick waited for the lock
                self.capture.tick(time.time())

    def close(self, reload: bool = False) -> None:
        """Write what is unfinished, close files, stop the threads (once).

        At a reload the compressor is cancelled rather than waited for: the
        new load's writers compress what it left (see ``_announce``), and
        supervisord's loop is not held up while a large backup is gzipped.
        """
        if self.stop_event.is_set():
            return
        self.stop_event.set()
        with self.lock:
            self.capture.close()
        compressor = self.capture.compressor
        if compressor is not None:
            if reload:
                compressor.cancel(timeout=5)
            else:
                compressor.stop(timeout=5)


class StreamlogNamespace:
    """The ``streamlog`` XML-RPC namespace (``supervisorctl streamlog status``)."""

    def __init__(self, plugin: Plugin) -> None:
        self._plugin = plugin

    def getAPIVersion(self) -> str:
        """Version of the streamlog XML-RPC interface."""
        return "1.0"

    def getStatus(self) -> Dict[str, Any]:
        """Captured processes with their files, bytes written, drops and writer errors.

        Plain dicts, strings and numbers, as XML-RPC needs.  Byte counts and
        ``chunks`` are sent as floats (doubles): XML-RPC integers are 32-bit
        and ``xmlrpc.client`` refuses a larger int with OverflowError, which
        would fail the whole call.  Rotations and error counts stay ints.
        """
        plugin = self._plugin
        with plugin.lock:
            stats = plugin.capture.stats()
        processes = []
        for spec, item in sorted(stats["processes"].items()):
            processes.append(
                {
                    "name": spec,
                    "path": item["path"],
                    "bytes_written": float(item["bytes_written"]),
                    "rotations": item["rotations"],
                    "write_errors": item["write_errors"],
                    "held_bytes": float(item["held_bytes"]),
                    "dropped_bytes": float(item["dropped_bytes"]),
                    "failing": item["failing"] or "",
                }
            )
        return {
            "logdir": plugin.config.logdir,
            "config": plugin.config.source,
            "chunks": float(stats["chunks"]),
            "internal_errors": stats["internal_errors"],
            "processes": processes,
        }

    def reopen(self) -> bool:
        """Reopen every log file by name (after an external logrotate)."""
        plugin = self._plugin
        with plugin.lock:
            plugin.capture.reopen()
        return True


def make_rpcinterface(supervisord: Any, **settings: str) -> StreamlogNamespace:
    """The ``supervisor.rpcinterface_factory`` of ``[rpcinterface:streamlog]``."""
    for plugin in _current:
        if plugin.supervisord is supervisord and plugin.subscribed():
            return plugin.namespace  # another HTTP server section of the same load
    path = settings.get("config") or supervisord.options.configfile
    try:
        config = load(path)
    except ConfigError as exc:
        supervisord.options.logger.critical(f"streamlog: {exc}")
        raise
    while _current:
        _current.pop().close(reload=True)  # a reload: the previous load's files
    plugin = Plugin(supervisord, config)
    plugin.subscribe()
    if not _current and _close_at_exit not in _registered:
        atexit.register(_close_at_exit)
        _registered.append(_close_at_exit)
    _current.append(plugin)
    return plugin.namespace
