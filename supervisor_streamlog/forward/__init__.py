"""The forwarder: records read from the files, sent to a log engine the user already runs.

``syslog`` turns a record into an RFC 5424 message; ``octet`` (RFC 6587
octet-counted TCP, plain or TLS) and ``relp`` (rsyslog's acknowledged
protocol) carry messages to a receiver; ``destinations`` parses the
``forward`` setting into the client for each URL.  Like the sidecar, the
forwarder reads only the files (``ondisk``), never the capture code, and it
uses the standard library's asyncio and ssl, not Tornado.
"""
