"""A process log written through the real capture path, and read back the simple way.

tests/test_logstore.py and tests/test_histogram.py read such logs with the read
side and check what it says against :func:`reference`.
"""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from typing import List, Optional

from supervisor_streamlog.capture.core import Capture
from supervisor_streamlog.capture.writer import Compressor
from supervisor_streamlog.config import from_mapping
from supervisor_streamlog.ondisk.files import Entry, process_files
from supervisor_streamlog.ondisk.formats import RecordError, parse

from .helpers import Clock


class Log:
    """A process log written through Capture (and Compressor when compressing)."""

    def __init__(self, root: Path, **settings: str) -> None:
        values = {
            "logdir": str(root / "logs"),
            "timezone": "utc",
            "maxbytes": "4KB",
            "backups": "100",
        }
        values.update(settings)
        config = from_mapping(values, here=str(root), environ={})
        self.compressor: Optional[Compressor] = None
        if config.compress:
            self.compressor = Compressor()
            self.compressor.start()
        self.clock = Clock()
        self.capture = Capture(config, clock=self.clock, compressor=self.compressor)
        self.live = str(root / "logs" / "app.log")

    def write(self, data: bytes, stream: str = "stdout", step: float = 0.5) -> None:
        self.clock.now += step
        self.capture.log("app", "app", stream, 42, data)

    def state(self, state: str, step: float = 0.5) -> None:
        self.clock.now += step
        self.capture.state("app", "app", state, 42, {"pid": 42})

    def close(self) -> None:
        if self.compressor is not None:
            assert self.compressor.wait_idle(30)
        self.capture.close()
        if self.compressor is not None:
            self.compressor.stop()


def reference(live: str) -> List[Entry]:
    """Every record of every file, read the simple way: the whole files."""
    out = []
    for item in process_files(live):
        data = Path(item.path).read_bytes()
        if item.compressed:
            data = gzip.decompress(data)
        offset = item.base
        for line in data.split(b"\n")[:-1]:
            end = offset + len(line) + 1
            try:
                out.append(Entry(offset, end, parse(line)))
            except RecordError:
                pass
            offset = end
    return out


def time_of(entry: Entry) -> float:
    """A record's time stamp as epoch seconds."""
    return datetime.fromisoformat(entry.record.time).timestamp()
