"""Capture: child output in, records on disk out.

Data flows one way: a front end (``plugin`` inside supervisord, or
``listener`` as an event listener) hands chunks to ``core.Capture``, which
assembles lines (``assemble``), formats records (``ondisk.formats``) and writes
them through ``writer.RotatingWriter``; ``compressor.Compressor`` gzips the
rotated files on a thread of its own.  Plugin mode runs inside supervisord,
so nothing here imports the sidecar, tornado or prometheus_client (a test
checks it).
"""
