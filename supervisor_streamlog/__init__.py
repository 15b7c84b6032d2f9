"""supervisor-streamlog: timestamped, line-safe, rotated and live child logs for supervisord."""

__version__ = "0.1.0"
