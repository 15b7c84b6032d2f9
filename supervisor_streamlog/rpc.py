"""XML-RPC to the supervisord that runs us, for the listener and the sidecar.

supervisord tells its children its URL (``SUPERVISOR_SERVER_URL``) but not the
username and password of its HTTP server: they are read from the
``[supervisorctl]`` section of our config file (normally supervisord.conf
itself), as supervisorctl does.  A proxy is not thread-safe: use it from one
thread at a time.
"""

from __future__ import annotations

import os
import xmlrpc.client
from typing import Any, Callable, Optional

from .config import ConfigError, read_parser

ProxyFactory = Callable[[], Any]


def credentials(config_path: str) -> tuple:
    """(username, password) from ``[supervisorctl]``, or (None, None)."""
    try:
        parser = read_parser(config_path)
    except ConfigError:
        return None, None
    if not parser.has_section("supervisorctl"):
        return None, None
    return (
        parser.get("supervisorctl", "username", fallback=None),
        parser.get("supervisorctl", "password", fallback=None),
    )


def supervisor_proxy(config_path: str, url: Optional[str] = None) -> Optional[ProxyFactory]:
    """A function returning a (lazily made, reused) proxy; None without a URL."""
    url = url or os.environ.get("SUPERVISOR_SERVER_URL")
    if not url:
        return None
    username, password = credentials(config_path)
    proxy: list = []

    def get() -> Any:
        if not proxy:
            from supervisor.xmlrpc import SupervisorTransport

            transport = SupervisorTransport(username, password, url)
            proxy.append(xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport))
        return proxy[0]

    return get
