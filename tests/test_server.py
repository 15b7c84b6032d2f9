"""Server pieces tested alone: whose address a connection counts against, download names."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
import tornado.httputil

from supervisor_streamlog.config import ConfigError, from_mapping
from supervisor_streamlog.logread.rawstore import RawFile
from supervisor_streamlog.sidecar.auth import ProxyTrust
from supervisor_streamlog.sidecar.handlers import download_name
from supervisor_streamlog.sidecar.metrics import render
from supervisor_streamlog.sidecar.server import Sidecar


def request(peer: str, headers: Dict[str, str]) -> tornado.httputil.HTTPServerRequest:
    made = tornado.httputil.HTTPServerRequest(
        headers=tornado.httputil.HTTPHeaders(dict(headers, Host="127.0.0.1:9002")),
        start_line=tornado.httputil.RequestStartLine("GET", "/ws", "HTTP/1.1"),
    )
    made.remote_ip = peer
    return made


def trust(proxies: str, bind: str = "127.0.0.1:9002") -> ProxyTrust:
    values = {"logdir": "/tmp/x", "trusted_proxies": proxies, "bind": bind}
    return ProxyTrust(from_mapping(values, here="/tmp", environ={}))


def test_forwarded_headers_count_only_from_a_trusted_proxy() -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.8"}
    # Not configured (the default): anybody could write those headers.
    assert trust("").client(request("127.0.0.1", forwarded)) == "127.0.0.1"
    proxy = trust("127.0.0.1 10.0.0.0/8")
    assert proxy.client(request("127.0.0.1", forwarded)) == "203.0.113.7"
    assert proxy.client(request("10.1.2.3", forwarded)) == "203.0.113.7"
    # A peer that is not a trusted proxy is the client, whatever it claims.
    assert proxy.client(request("192.0.2.1", forwarded)) == "192.0.2.1"
    # The nearest hop that is not a trusted proxy; a spoofed leftmost one is ignored.
    chain = {"X-Forwarded-For": "1.1.1.1, 203.0.113.7, 10.0.0.5"}
    assert proxy.client(request("127.0.0.1", chain)) == "203.0.113.7"
    assert proxy.client(request("127.0.0.1", {"X-Real-IP": "203.0.113.9"})) == "203.0.113.9"
    assert proxy.client(request("127.0.0.1", {})) == "127.0.0.1"
    # Garbage is not an address: the proxy's own address counts.
    assert proxy.client(request("127.0.0.1", {"X-Forwarded-For": "<script>"})) == "127.0.0.1"


def test_a_unix_socket_proxy_is_trusted_only_when_listed() -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    assert trust("", "unix:/tmp/s").client(request("0.0.0.0", forwarded)) == "unix"
    assert trust("unix", "unix:/tmp/s").client(request("0.0.0.0", forwarded)) == "203.0.113.7"


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies = 'proxy.example'"):
        trust("proxy.example")


@pytest.mark.parametrize(
    "spec, name",
    [
        ("web:web", "web.log"),
        ("workers:worker_00", "workers_worker_00.log"),
        ('a"b:..\\/x\r\n', "a_b_..__x__.log"),
        ("..:..", "process.log"),
        ("caf\u00e9:caf\u00e9", "caf_.log"),
    ],
)
def test_download_names_are_plain(spec: str, name: str) -> None:
    assert download_name(spec) == name


def test_the_metrics_counters_go_on_when_capture_takes_a_process_over(tmp_path: Path) -> None:
    """A process shown from supervisord's own log, then captured: its lines and
    bytes counters keep counting (a drop to 0 reads as a counter reset)."""
    (tmp_path / "logs").mkdir()
    raw = tmp_path / "app-stdout.log"
    raw.write_text("one\ntwo\nthree\n")
    sidecar = Sidecar(from_mapping({"logdir": str(tmp_path / "logs")}, str(tmp_path), {}))
    sidecar.raw.add("app:app", [RawFile("stdout", str(raw)), RawFile("stderr", "")])
    with open(raw, "a") as handle:
        handle.write("four\nfive\n")
    sidecar.raw.poll()

    def lines() -> str:
        text = render(sidecar.snapshots.take()).decode()
        return next(
            line for line in text.splitlines() if line.startswith("streamlog_sidecar_lines")
        )

    assert lines().endswith(" 2.0")
    sidecar.registry.add_process("app:app", str(tmp_path / "logs" / "app.log"))
    assert lines().endswith(" 2.0")
    sidecar.stop()
