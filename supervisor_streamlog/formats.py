"""Reading the files from Python: ``parse(line)`` and ``reassemble(records, stream)``.

A stable import path for users (docs/format.md); the formats themselves live
in :mod:`supervisor_streamlog.ondisk.formats`.
"""

from .ondisk.formats import Record, RecordError, iter_records, parse, reassemble

__all__ = ["Record", "RecordError", "iter_records", "parse", "reassemble"]
