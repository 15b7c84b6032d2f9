"""The one gzip reader: a ``.gz`` backup's contents, whole or forward in pieces.

The capture compresses rotated backups (capture/writer.py); every reader of
one -- the history store and its cache of whole files, an export, the
histogram's scan, the follower, the restart count -- decompresses it through
:func:`inflate`: in memory (:func:`gunzip`) or forward through a descriptor
(:class:`GzipStream`, memory one piece whatever the file's size).

Invariants: gzip members one after another (concatenated files) read as one
stream; a truncated or damaged file gives what decompressed before the
damage and never raises a decompression error (a reader treats it as a file
that ends there, or asks whether the end was clean: the value :func:`inflate`
returns, :attr:`GzipStream.complete`); ``limit`` bounds what is decompressed,
not only what is returned, so a header costs a header's worth of work.  No state is shared:
each call or stream is one reader's.
"""

from __future__ import annotations

import os
import zlib
from typing import Generator, Iterable, Iterator, List, Optional


def inflate(
    pieces: Iterable[bytes], limit: int = 0, piece: int = 0
) -> Generator[bytes, None, bool]:
    """The contents of gzip data given in pieces, decompressed as they come.

    The one gzip reader: every ``.gz`` backup is read through it, whole in
    memory (:func:`gunzip`) or forward through a descriptor
    (:class:`GzipStream`).  Members one after another (concatenated files)
    read as one; a damaged or truncated file gives what came out before the
    damage, never an exception.  Up to ``limit`` bytes (0: all), in pieces of
    at most ``piece`` bytes (0: as they come) -- zlib drops a call's output
    when it meets damage, so small pieces keep more of what came before it.

    Returns (the generator's ``StopIteration.value``) whether the data was
    read to a clean end -- every member whole, its checksum right, nothing
    after the last -- which is how a reader tells a damaged or truncated
    file from a whole one (no data at all is a clean end).
    """
    unpack = zlib.decompressobj(wbits=31)
    got = 0
    started = False
    try:
        for raw in pieces:
            view = memoryview(raw)
            more = False  # output held back by the bound, with no input left
            while view or more:
                if unpack.eof:  # the member before ended with the last piece
                    unpack = zlib.decompressobj(wbits=31)
                started = True
                room = limit - got if limit else 0
                if piece and (not room or piece < room):
                    room = piece
                out = unpack.decompress(view, room)
                if out:
                    got += len(out)
                    yield out
                if limit and got >= limit:
                    return False
                more = bool(room) and len(out) == room and not unpack.eof
                if unpack.unconsumed_tail:
                    view = memoryview(unpack.unconsumed_tail)
                elif unpack.eof and unpack.unused_data:
                    # Another gzip member follows (concatenated files).
                    view = memoryview(unpack.unused_data)
                    unpack = zlib.decompressobj(wbits=31)
                else:
                    view = memoryview(b"")
    except zlib.error:
        return False  # a damaged or truncated file: keep what came out
    return unpack.eof or not started


#: What a :class:`GzipStream` decompresses at most at once.
PIECE = 256 * 1024


def gunzip(raw: bytes, limit: int = 0) -> bytes:
    """Gzip data in memory, decompressed (:func:`inflate`): up to ``limit`` bytes (0: all)."""
    out = list(inflate((raw,), limit))
    return out[0] if len(out) == 1 else b"".join(out)


class GzipStream:
    """A ``.gz`` file's contents, read forward through descriptor ``fd`` (which it
    owns and closes): :func:`inflate` over reads of ``chunk`` compressed bytes.

    What a reader that goes through a file once uses (an export, the
    histogram's scan, the follower): memory stays at a piece whatever the
    file's size, and the stream can be kept between calls.  :meth:`read` may
    raise OSError (the disk), never a decompression error; once it gave the
    end (b""), :attr:`complete` says whether that was the contents' clean end
    or damage (see :func:`inflate`).  ``piece`` bounds each piece decompressed
    (:data:`PIECE` by default, so that memory stays at a piece even for a file
    that expands a thousandfold; 0: as they come).
    """

    def __init__(self, fd: int, chunk: int = 256 * 1024, piece: int = PIECE) -> None:
        self.fd = fd
        self._chunk = max(1, chunk)
        self._piece = piece
        #: Compressed bytes read so far.
        self.compressed = 0
        #: None until the end was read; then whether it was a clean end.
        self.complete: Optional[bool] = None
        self._pieces = inflate(self._raw(self._chunk), piece=piece)
        self._held = b""
        self._at = 0  # what of ``_held`` was read

    def rewind(self) -> None:
        """Read again from the first byte of the contents (a reader that must go back)."""
        self.compressed = 0
        self.complete = None
        self._pieces = inflate(self._raw(self._chunk), piece=self._piece)
        self._held, self._at = b"", 0

    def _raw(self, chunk: int) -> Iterator[bytes]:
        while True:
            raw = os.pread(self.fd, chunk, self.compressed)
            if not raw:
                return
            self.compressed += len(raw)
            yield raw

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from where the last read ended (size < 0: the next
        piece as it comes); b"" at the end of the contents."""
        if self._at >= len(self._held):
            try:
                self._held, self._at = next(self._pieces), 0
            except StopIteration as end:
                if self.complete is None:  # not at a read after the end
                    self.complete = bool(end.value)
                self._held, self._at = b"", 0
        if self._at == 0 and (size < 0 or size >= len(self._held)):
            out, self._held = self._held, b""
            return out
        stop = len(self._held) if size < 0 else self._at + size
        out = self._held[self._at : stop]
        self._at += len(out)
        return out

    def close(self) -> None:
        """Close the file (twice is harmless)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def read_whole(fd: int) -> bytes:
    """All of a file's bytes, through a descriptor (whatever its position)."""
    pieces: List[bytes] = []
    pos = 0
    while True:
        data = os.pread(fd, max(os.fstat(fd).st_size - pos, 64 * 1024), pos)
        if not data:
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.append(data)
        pos += len(data)
