"""The sidecar: serves the read side (``logread``) over HTTP and WebSocket.

It reads only the files (through ``logread`` and ``ondisk``) and supervisord's XML-RPC
(``rpc``); it never imports capture.
"""
