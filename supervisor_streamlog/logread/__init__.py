"""The read side of a log: everything that reads what capture wrote.

``follow`` (what is new, across rotation and gzip, by offset), ``blocks``
(reading by offset in whole-record blocks), ``logstore`` (history, time seek,
search, export of a captured process), ``rawstore``/``rawfollow``
(supervisord's own child logs of uncaptured processes), ``histogram``,
``levels``, ``restarts``.  The sidecar, ``tail``, the forwarder and alerts
import this package; it imports only ``ondisk`` and never tornado, so any of
them can use it without loading a server.
"""
