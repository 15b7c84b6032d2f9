"""The contract on disk that capture writes and every reader relies on.

``paths`` (where a process's file lives), ``logdir`` (which names in logdir
are process logs, and finding them), ``formats`` (one record per line: text
or JSON Lines) and ``files`` (which files make up a process's log, in which
order, and the offset each begins at).  Both sides import this package;
it imports neither of them.
"""
