"""Where supervisord.conf finds the plugin (``[rpcinterface:streamlog]``).

The string ``supervisor_streamlog.plugin:make_rpcinterface`` is in users'
configuration files, so it stays importable here; the plugin itself lives in
:mod:`supervisor_streamlog.capture.plugin`.
"""

from .capture.plugin import make_rpcinterface

__all__ = ["make_rpcinterface"]
