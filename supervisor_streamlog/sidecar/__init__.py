"""The sidecar: follows the files capture wrote and serves them over HTTP and WebSocket.

It reads only the files (through ``ondisk``) and supervisord's XML-RPC
(``rpc``); it never imports capture.
"""
