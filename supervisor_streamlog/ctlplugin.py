"""Where supervisord.conf finds the supervisorctl plugin (``[ctlplugin:streamlog]``).

The string ``supervisor_streamlog.ctlplugin:make_ctlplugin`` is in users'
configuration files, so it stays importable here; the plugin itself lives in
:mod:`supervisor_streamlog.capture.ctlplugin`.
"""

from .capture.ctlplugin import make_ctlplugin

__all__ = ["make_ctlplugin"]
