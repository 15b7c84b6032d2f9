"""``supervisorctl streamlog status|reopen``: reach the plugin's XML-RPC namespace.

Add to supervisord.conf (supervisorctl reads the same file)::

    [ctlplugin:streamlog]
    supervisor.ctl_factory = supervisor_streamlog.ctlplugin:make_ctlplugin
"""

from __future__ import annotations

from typing import Any

from supervisor.supervisorctl import ControllerPluginBase


class StreamlogControllerPlugin(ControllerPluginBase):
    """Adds the ``streamlog`` command to supervisorctl."""

    name = "streamlog"

    def __init__(self, controller: Any) -> None:
        super().__init__(controller)
        # `supervisorctl help streamlog` asks every plugin in turn, and
        # supervisor's own plugin (first in the list) answers "*** No help on
        # streamlog" before ours gives the help.  Give it a silent entry for
        # our command so that the help is all the user sees.
        for plugin in getattr(controller.options, "plugins", ()):
            if plugin is not self and not hasattr(plugin, "help_streamlog"):
                plugin.help_streamlog = lambda: None

    def do_streamlog(self, arg: str) -> None:
        """streamlog status|reopen: show what is captured, or reopen the log files."""
        proxy = self.ctl.get_server_proxy("streamlog")
        command = arg.strip() or "status"
        if command == "reopen":
            proxy.reopen()
            self.ctl.output("streamlog: reopened the log files")
            return
        if command != "status":
            self.ctl.output("usage: streamlog status|reopen")
            self.ctl.exitstatus = 2
            return
        status = proxy.getStatus()
        self.ctl.output(f"logdir: {status['logdir']}  (config {status['config']})")
        errors = status["internal_errors"]
        self.ctl.output(f"chunks: {int(status['chunks'])}  internal errors: {errors}")
        for item in status["processes"]:
            state = f"FAILING {item['failing']}" if item["failing"] else "ok"
            self.ctl.output(
                f"{item['name']:30} {state:14} {int(item['bytes_written']):>14} bytes  "
                f"{item['rotations']} rotations  {int(item['dropped_bytes'])} dropped  "
                f"{item['path']}"
            )

    def help_streamlog(self) -> None:
        """``supervisorctl help streamlog``."""
        self.ctl.output("streamlog status\tCaptured processes, bytes written, drops, errors")
        self.ctl.output("streamlog reopen\tReopen every streamlog file (after logrotate)")


def make_ctlplugin(controller: Any, **config: str) -> StreamlogControllerPlugin:
    """The ``supervisor.ctl_factory`` of ``[ctlplugin:streamlog]``."""
    return StreamlogControllerPlugin(controller)
