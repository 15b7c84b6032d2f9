"""``/ws``: the WebSocket of live records, subscriptions and state changes (docs/protocol.md).

One :class:`LiveHandler` per connection, a :class:`~.hub.Client` of the hub
once open: the hub fans records out and sends the catch-up, this handler only
parses client messages (``protocol``) and turns them into subscriptions.
Limits: :data:`MAX_SUBSCRIPTIONS` per connection, :data:`MAX_BAD_MESSAGES`
before it is closed, :data:`MAX_CONNECTIONS_PER_ADDRESS` open connections per
client address (counted by an :class:`~.auth.AddressCounts` at the URL spec,
the address as :class:`~.auth.Access` finds it behind trusted proxies).  The
Origin must be this server's or one of ``allowed_origins``.  Everything runs
on the IOLoop.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlparse

import tornado.websocket

from .auth import Access, AddressCounts, send_refusal
from .hub import Client, Hub
from .processes import ProcessRegistry
from .protocol import MAX_MESSAGE, MessageError, parse_message

MAX_SUBSCRIPTIONS = 32
MAX_CONNECTIONS_PER_ADDRESS = 32
MAX_BAD_MESSAGES = 20


class LiveHandler(tornado.websocket.WebSocketHandler):
    """``/ws``: subscriptions, live records, state changes (docs/protocol.md)."""

    def initialize(
        self,
        access: Access,
        registry: ProcessRegistry,
        hub: Hub,
        states: Mapping[str, Dict[str, Any]],
        connections: AddressCounts,
        enabled: bool,
    ) -> None:
        self.access = access
        self.registry = registry
        self.hub = hub
        #: supervisord's states, sent after a subscription's catch-up.
        self.states = states
        #: Open WebSocket connections per client address (MAX_CONNECTIONS_PER_ADDRESS).
        self.connections = connections
        #: ``websocket_enabled``.
        self.enabled = enabled
        self.client: Optional[Client] = None
        self.bad_messages = 0
        self.address = ""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        refusal = self.access.refusal(self.request)
        if refusal is not None:
            send_refusal(self, refusal)
            return
        if not self.enabled:
            self.set_status(404)
            self.finish({"error": "live streaming is off (websocket_enabled = false)"})
            return
        self.address = self.access.client(self.request)
        if not self.connections.has_room(self.address):
            self.set_status(429)
            self.finish({"error": "too many connections"})
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        parsed = urlparse(origin)
        host = self.request.headers.get("Host", "")
        if parsed.netloc and parsed.netloc.lower() == host.lower():
            return True
        allowed = (self.access.allowed_origins or "").replace(",", " ").split()
        return origin.rstrip("/") in {item.rstrip("/") for item in allowed}

    def open(self, *args: str, **kwargs: str) -> None:
        # Frames are small and latency matters: without this, Nagle's algorithm
        # and delayed ACKs hold a frame back ~16-40 ms (bench/sidecar.py).
        self.set_nodelay(True)
        self.connections.add(self.address)
        self.client = self.hub.connect(self)
        self.client.send(
            {
                "type": "hello",
                "version": 1,
                "max_message": MAX_MESSAGE,
                "max_subscriptions": MAX_SUBSCRIPTIONS,
            }
        )

    def send(self, message: str) -> Any:
        """For the hub: write one frame; the future completes once it is written."""
        try:
            return self.write_message(message)
        except tornado.websocket.WebSocketClosedError:
            if self.client is not None:
                self.client.close()
            return None

    def on_message(self, message: Any) -> None:
        client = self.client
        if client is None:
            return
        try:
            request = parse_message(message)
            self._handle(client, request)
        except MessageError as exc:
            self.bad_messages += 1
            client.send({"type": "error", "error": str(exc)})
            if self.bad_messages >= MAX_BAD_MESSAGES:
                self.close(1008, "too many bad messages")

    def _handle(self, client: Client, request: Dict[str, Any]) -> None:
        kind = request["type"]
        if kind == "ping":
            client.send({"type": "pong", "id": request["id"]})
            return
        spec = self.registry.lookup(request["process"])
        if spec is None:
            raise MessageError("no such process log")
        if kind == "unsubscribe":
            self.hub.unsubscribe(client, spec)
            client.send({"type": "unsubscribed", "process": spec})
            return
        if spec not in client.subscriptions and len(client.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise MessageError(f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        states = [
            {"type": "state", **state} for state in self.states.values() if state["process"] == spec
        ]
        self.hub.subscribe(
            client, spec, tail=request["tail"], cursor=request["cursor"], then=states
        )

    def on_close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
            self.connections.release(self.address)
