"""Run supervisord, recording how full each event listener pool's buffer got.

    python -m bench.supervisord_peak PEAKFILE -c supervisord.conf

The same supervisord (``supervisor.supervisord.main``) with one addition: after
every event a pool accepts, the length of its ``event_buffer`` is compared with
the largest seen, and at exit the peak per pool is written to PEAKFILE as JSON.
A run whose peak stayed below ``buffer_size`` lost no event; the peak of a run
with a large ``buffer_size`` is the ``buffer_size`` that run needed.  The cost
is one ``len()`` and one comparison per event.
"""

from __future__ import annotations

import atexit
import json
import sys
from typing import Any, Dict, List


def install(path: str) -> Dict[str, int]:
    from supervisor.process import EventListenerPool

    peaks: Dict[str, int] = {}
    accept = EventListenerPool._acceptEvent

    def counting(self: Any, event: Any, head: bool = False) -> None:
        accept(self, event, head)
        size = len(self.event_buffer)
        name = self.config.name
        if size > peaks.get(name, 0):
            peaks[name] = size

    EventListenerPool._acceptEvent = counting

    def save() -> None:
        with open(path, "w") as handle:
            json.dump(peaks, handle)

    atexit.register(save)
    return peaks


def main(argv: List[str]) -> None:
    install(argv[1])
    from supervisor import supervisord

    supervisord.main(argv[2:])


if __name__ == "__main__":
    main(sys.argv)
