"""The ``[streamlog]`` configuration section: every setting declared once.

The section can live in supervisord.conf itself or in its own file::

    [streamlog]
    logdir = %(here)s/streamlog
    programs = web worker:*
    maxbytes = 50MB
    backups = 10

Each setting has a name, a parser, a default and a line of help, in ``SETTINGS``
below.  A bad value raises :class:`ConfigError` whose message is one line naming
the key, the value and what is accepted, so start-up fails loudly and clearly.
A :class:`Config` is built once at start (threads only read it); the
``forward`` URLs are checked here too, their clients made in
:mod:`.forward.destinations`.
"""

from __future__ import annotations

import configparser
import fnmatch
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from supervisor.datatypes import byte_size

SECTION = "streamlog"


class ConfigError(ValueError):
    """A configuration problem, worded for the person who wrote the file."""


def _size(value: str) -> int:
    """Parse ``10MB``-style sizes exactly as supervisord does."""
    try:
        result = byte_size(value)
    except ValueError:
        raise ValueError("a size such as 0, 4096, 500KB, 50MB or 1GB") from None
    if result < 0:
        raise ValueError("a size of 0 or more")
    return int(result)


def _count(value: str) -> int:
    try:
        result = int(value)
    except ValueError:
        raise ValueError("a whole number of 0 or more") from None
    if result < 0:
        raise ValueError("a whole number of 0 or more")
    return result


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError("true or false")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in choices:
            raise ValueError(" or ".join(choices))
        return lowered

    return parse


def _globs(value: str) -> Tuple[str, ...]:
    items = tuple(item for item in value.replace(",", " ").split() if item)
    if not items:
        raise ValueError("one or more program name globs, e.g. * or web worker:*")
    return items


def _line_length(value: str) -> int:
    result = _size(value)
    if result < 80:
        raise ValueError("a size of at least 80 bytes")
    return result


def _bind(value: str) -> str:
    value = value.strip()
    if value.startswith("unix:"):
        if len(value) <= len("unix:"):
            raise ValueError("host:port or unix:/path/to/socket")
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("host:port or unix:/path/to/socket")
    return value


def _proxies(value: str) -> Tuple[str, ...]:
    items = tuple(item for item in value.replace(",", " ").split() if item)
    for item in items:
        if item == "unix":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                "addresses or networks of reverse proxies (127.0.0.1, 10.0.0.0/8, ::1), "
                "or unix for the unix socket of bind = unix:/path"
            ) from None
    return items


def _seconds(value: str) -> float:
    try:
        result = float(value)
    except ValueError:
        raise ValueError("a number of seconds above 0") from None
    if not 0 < result <= 86400:
        raise ValueError("a number of seconds above 0 (at most 86400)")
    return result


_SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

FORWARD_SCHEMES = ("relp", "tcp", "tls")
FORWARD_ACCEPTED = (
    "whitespace-separated relp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT (IPv6 as [::1])"
)


@dataclass(frozen=True)
class Destination:
    """One URL of the ``forward`` setting."""

    scheme: str  # relp, tcp or tls
    host: str  # without brackets
    port: int
    url: str  # as written (the name in logs, metrics and state files)


def parse_destination(url: str) -> Destination:
    """One URL; a bad one raises ValueError with a one-line reason."""

    def bad(reason: str) -> ValueError:
        return ValueError(f"{FORWARD_ACCEPTED}; {url!r} {reason}")

    scheme, sep, rest = url.partition("://")
    if not sep:
        raise bad("is not a URL")
    if scheme.lower() not in FORWARD_SCHEMES:
        raise bad(f"has an unknown scheme {scheme!r}")
    if rest.count(":") > 1 and not rest.startswith("["):
        raise bad("has an IPv6 address without brackets")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise bad("has a bad host or port") from None
    if parts.username is not None or parts.password is not None:
        raise bad("has a user name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise bad("has more than host and port")
    if not host:
        raise bad("has no host")
    if port is None:
        raise bad("has no port")
    if not 0 < port < 65536:
        raise bad("has a port outside 1..65535")
    return Destination(parts.scheme, host, port, url)


def parse_destinations(value: str) -> Tuple[Destination, ...]:
    """The ``forward`` setting: every URL in it (none: forwarding is off)."""
    found = []
    seen = set()
    for url in value.split():
        destination = parse_destination(url)
        key = (destination.scheme, destination.host.lower(), destination.port)
        if key in seen:
            raise ValueError(f"{FORWARD_ACCEPTED}; {url!r} is listed twice")
        seen.add(key)
        found.append(destination)
    return tuple(found)


def _destinations(value: str) -> str:
    """The ``forward`` setting, checked here like every other (see parse_destinations)."""
    parse_destinations(value)
    return " ".join(value.split())


def _metrics_bind(value: str) -> Optional[str]:
    """``forward_metrics``: an address, or nothing (off)."""
    value = value.strip()
    if not value:
        return None
    try:
        return _bind(value)
    except ValueError:
        raise ValueError(
            "host:port (e.g. 127.0.0.1:9718), unix:/path/to/socket, or nothing (off)"
        ) from None


def _severity(value: str) -> int:
    lowered = value.strip().lower()
    if lowered == "error":
        lowered = "err"
    if lowered in _SEVERITIES:
        return _SEVERITIES.index(lowered)
    if lowered.isdigit() and int(lowered) < len(_SEVERITIES):
        return int(lowered)
    raise ValueError("a syslog severity: " + ", ".join(_SEVERITIES) + " (or 0-7)")


def _text(value: str) -> str:
    return value.strip()


def _optional_text(value: str) -> Optional[str]:
    value = value.strip()
    return value or None


@dataclass(frozen=True)
class Setting:
    """One ``[streamlog]`` key: how to parse it, its default and its help."""

    name: str
    parse: Callable[[str], Any]
    default: Optional[str]
    help: str


SETTINGS: Tuple[Setting, ...] = (
    Setting("logdir", _text, "%(here)s/streamlog", "where the per-process files go"),
    Setting("programs", _globs, "*", "glob list of group:name or name to capture"),
    Setting("format", _choice("text", "json"), "text", "text or json (JSON Lines)"),
    Setting("timezone", _choice("local", "utc"), "local", "local or utc timestamps"),
    Setting("maxbytes", _size, "50MB", "rotate when the file reaches this; 0 = never"),
    Setting("backups", _count, "10", "rotated files kept"),
    Setting("max_total_bytes", _size, "0", "cap on one process's files together; 0 = none"),
    Setting("compress", _bool, "false", "gzip rotated files"),
    Setting(
        "max_line_length",
        _line_length,
        "16384",
        "longer lines are split into marked pieces; no byte dropped",
    ),
    Setting("flush_interval", _count, "0", "ms to batch writes; 0 = write every chunk"),
    Setting(
        "partial_timeout",
        _count,
        "500",
        "ms a line without newline waits before it is written as a marked piece",
    ),
    Setting(
        "write_buffer", _size, "16MB", "per process: records held while the disk refuses writes"
    ),
    Setting("bind", _bind, "127.0.0.1:9002", "sidecar address (host:port or unix:/path)"),
    Setting("websocket_enabled", _bool, "true", "live streaming on/off"),
    Setting("username", _optional_text, None, "sidecar auth user"),
    Setting("password", _optional_text, None, "sidecar auth password, plain or {SHA}hex"),
    Setting("allowed_origins", _optional_text, None, "extra WebSocket origins"),
    Setting(
        "trusted_proxies",
        _proxies,
        "",
        "reverse proxies whose X-Forwarded-For / X-Real-IP name the client (for limits)",
    ),
    Setting(
        "request_timeout",
        _seconds,
        "20",
        "s a request's header (or body) may take to arrive, and a kept-alive connection may idle",
    ),
    Setting("certfile", _optional_text, None, "serve HTTPS/WSS with this certificate"),
    Setting("keyfile", _optional_text, None, "private key for certfile"),
    Setting(
        "hostname",
        _optional_text,
        None,
        "this host's name in forwarded records (default: the system's host name); "
        "when set, JSON records carry it as host",
    ),
    Setting(
        "forward",
        _destinations,
        "",
        "forward every record to these: relp://host:port, tcp://host:port, tls://host:port",
    ),
    Setting(
        "forward_state",
        _optional_text,
        None,
        "where forward keeps its offsets (default: <logdir>/.forward)",
    ),
    Setting(
        "forward_start",
        _choice("oldest", "newest"),
        "oldest",
        "first start: from the oldest record on disk, or only new ones",
    ),
    Setting("forward_cafile", _optional_text, None, "CA certificates to verify tls:// receivers"),
    Setting("forward_certfile", _optional_text, None, "client certificate for tls://"),
    Setting("forward_keyfile", _optional_text, None, "private key of forward_certfile"),
    Setting("forward_verify", _bool, "true", "verify tls:// receivers' certificates and names"),
    Setting(
        "forward_stderr_severity",
        _severity,
        "warning",
        "syslog severity of stderr lines (stdout: info; unexpected exits: err)",
    ),
    Setting(
        "actions",
        _bool,
        "false",
        "start/stop/restart/signal buttons on the tail page (needs username and password)",
    ),
    Setting(
        "forward_metrics",
        _metrics_bind,
        "",
        "forward serves /metrics here (host:port or unix:/path; e.g. 127.0.0.1:9718); empty = off",
    ),
    Setting(
        "layout",
        _choice("processes", "hosts"),
        "processes",
        "processes: <logdir>/<process files>; hosts: <logdir>/<host>/<process files>, "
        "as supervisor-streamlog receive writes them on a central host",
    ),
)

_BY_NAME: Dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Config:
    """The validated ``[streamlog]`` settings."""

    logdir: str
    programs: Tuple[str, ...] = ("*",)
    format: str = "text"
    timezone: str = "local"
    maxbytes: int = 50 * 1024 * 1024
    backups: int = 10
    max_total_bytes: int = 0
    compress: bool = False
    max_line_length: int = 16384
    flush_interval: int = 0
    partial_timeout: int = 500
    write_buffer: int = 16 * 1024 * 1024
    bind: str = "127.0.0.1:9002"
    websocket_enabled: bool = True
    username: Optional[str] = None
    password: Optional[str] = None
    allowed_origins: Optional[str] = None
    trusted_proxies: Tuple[str, ...] = ()
    request_timeout: float = 20.0
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    hostname: Optional[str] = None
    forward: str = ""
    forward_state: Optional[str] = None
    forward_start: str = "oldest"
    forward_cafile: Optional[str] = None
    forward_certfile: Optional[str] = None
    forward_keyfile: Optional[str] = None
    forward_verify: bool = True
    forward_stderr_severity: int = 4
    actions: bool = False
    forward_metrics: Optional[str] = None
    layout: str = "processes"
    source: str = field(default="", compare=False)

    def captures(self, group: str, name: str) -> bool:
        """Whether the process ``group:name`` is matched by ``programs``."""
        full = f"{group}:{name}"
        for pattern in self.programs:
            if ":" in pattern:
                if fnmatch.fnmatchcase(full, pattern):
                    return True
            elif fnmatch.fnmatchcase(name, pattern) or (
                group != name and fnmatch.fnmatchcase(group, pattern)
            ):
                return True
        return False


def _expand(value: str, key: str, variables: Mapping[str, str]) -> str:
    try:
        return value % variables
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"[{SECTION}] {key} = {value!r}: cannot expand {exc}; "
            "use %(here)s or %(ENV_NAME)s, and %% for a literal %"
        ) from None


def from_mapping(
    values: Mapping[str, str], here: str, environ: Optional[Mapping[str, str]] = None
) -> Config:
    """Build a :class:`Config` from raw strings, as found in the ini section."""
    env = os.environ if environ is None else environ
    variables = {"here": here}
    variables.update({f"ENV_{key}": value for key, value in env.items()})
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise ConfigError(
            f"[{SECTION}] unknown key {unknown[0]!r}; known keys: "
            + ", ".join(setting.name for setting in SETTINGS)
        )
    parsed: Dict[str, Any] = {}
    for setting in SETTINGS:
        raw = values.get(setting.name, setting.default)
        if raw is None:
            parsed[setting.name] = None
            continue
        raw = _expand(raw, setting.name, variables)
        try:
            parsed[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(
                f"[{SECTION}] {setting.name} = {raw!r} is not valid: expected {exc}"
            ) from None
    logdir = parsed["logdir"]
    if not logdir:
        raise ConfigError(f"[{SECTION}] logdir is empty: expected a directory path")
    parsed["logdir"] = os.path.abspath(os.path.join(here, logdir))
    if (parsed["username"] is None) != (parsed["password"] is None):
        raise ConfigError(
            f"[{SECTION}] username and password must be set together "
            "(one without the other would leave the sidecar open)"
        )
    if parsed["actions"] and parsed["username"] is None:
        raise ConfigError(
            f"[{SECTION}] actions = true needs username and password: "
            "process control must not be open to anyone who can reach the sidecar"
        )
    if (parsed["certfile"] is None) != (parsed["keyfile"] is None):
        raise ConfigError(f"[{SECTION}] certfile and keyfile must be set together")
    if (parsed["forward_certfile"] is None) != (parsed["forward_keyfile"] is None):
        raise ConfigError(f"[{SECTION}] forward_certfile and forward_keyfile must be set together")
    if parsed["forward_state"] is not None:
        parsed["forward_state"] = os.path.abspath(os.path.join(here, parsed["forward_state"]))
    return Config(**parsed)


def read_parser(path: str) -> configparser.RawConfigParser:
    """Read an ini file the way supervisord does (``;``/``#`` comments, lenient)."""
    parser = configparser.RawConfigParser(
        inline_comment_prefixes=(";", "#"), strict=False, interpolation=None
    )
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"cannot parse config file {path}: {first}") from None
    return parser


def load(path: str, environ: Optional[Mapping[str, str]] = None) -> Config:
    """Load and validate the ``[streamlog]`` section of ``path``.

    A missing section means all defaults, so ``[streamlog]`` is optional.
    """
    path = os.path.abspath(path)
    parser = read_parser(path)
    values: Dict[str, str] = {}
    if parser.has_section(SECTION):
        values = dict(parser.items(SECTION))
    config = from_mapping(values, os.path.dirname(path), environ)
    return _with_source(config, path)


def _with_source(config: Config, path: str) -> Config:
    from dataclasses import replace

    return replace(config, source=path)


def describe() -> List[str]:
    """One line per setting, for ``--help`` style listings and the docs."""
    return [f"{s.name} = {s.default or ''}  ; {s.help}" for s in SETTINGS]
