"""Forwarding: every record to the syslog receivers a fleet already runs (RELP, TCP, TLS)."""
