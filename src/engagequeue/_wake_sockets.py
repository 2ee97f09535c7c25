"""Wake-ups between processes sharing one SQLite file: a directory of UNIX datagram sockets.

Every store that has wake-up callbacks (a running ``Scheduler``) binds one datagram socket
in ``<database>-eqwake/``. A store that commits a schedule, an edit or a reconnect sends
one byte to every other socket there; the receiving store's event loop reads it and calls
its callbacks. Nothing runs while nothing changes (the listener is a file descriptor in
the event loop's selector), and a wake-up costs the writer a directory listing and one
``sendto`` per listener. A socket whose owner died refuses the byte
(``ECONNREFUSED``) and the writer removes it.

Limits: one machine (the sockets are local; SQLite on a network file system is unsafe
anyway), POSIX only (elsewhere stores fall back to their poll), and a wake-up is a hint:
a full buffer or a listener that is not bound yet only delays a post until the
scheduler's next pass, which claims everything due.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

__all__ = ["SocketWaker", "supported"]

logger: Final = logging.getLogger("engagequeue")

_MAX_PATH: Final = 100
"""Socket paths longer than this (the kernel's limit is 107 bytes) go through /proc."""
_PROC_FD: Final = "/proc/self/fd"


def supported() -> bool:
    """Whether this platform has UNIX datagram sockets."""
    return hasattr(socket, "AF_UNIX") and sys.platform != "win32"


class SocketWaker:
    """The wake-up socket directory of one SQLite file, as one store uses it.

    ``listen`` binds this store's socket and calls ``callback`` (on the event loop) when
    another store announces a change; ``announce`` tells every other listener. Both are
    called on the event loop's thread.
    """

    def __init__(self, database: str) -> None:
        self.directory = Path(f"{database}-eqwake")
        self._name = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sender: socket.socket | None = None
        self._dir_fd: int | None = None
        self._names: list[str] = []

    @property
    def listening(self) -> bool:
        """Whether this store's socket is bound and watched."""
        return self._listener is not None

    def _address(self, name: str) -> str:
        path = str(self.directory / name)
        if len(os.fsencode(path)) <= _MAX_PATH:
            return path
        # A deep database path: reach the directory through an open descriptor of it,
        # which keeps the socket address short whatever the directory's own length.
        if self._dir_fd is None:
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"{_PROC_FD}/{self._dir_fd}/{name}"

    def listen(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> bool:
        """Bind this store's socket and watch it; False (and a log line) if that fails."""
        if self._listener is not None:
            return True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.settimeout(0.0)  # non-blocking
                sock.bind(self._address(self._name))
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            logger.warning(
                "engagequeue: cannot listen for wake-ups from other processes in %s (%s); "
                "changes they make wait for the scheduler's poll",
                self.directory,
                exc,
            )
            return False

        def readable() -> None:
            woken = False
            while True:
                try:
                    sock.recv(64)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                woken = True
            if woken:
                callback()

        loop.add_reader(sock.fileno(), readable)
        self._listener, self._loop = sock, loop
        return True

    def stop(self) -> None:
        """Unwatch, close and remove this store's socket. Idempotent."""
        sock, self._listener = self._listener, None
        loop, self._loop = self._loop, None
        if sock is not None:
            if loop is not None and not loop.is_closed():
                loop.remove_reader(sock.fileno())
            sock.close()
            with contextlib.suppress(OSError):
                (self.directory / self._name).unlink()

    def close(self) -> None:
        """Stop listening and release the sending socket and directory descriptor."""
        self.stop()
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()
        fd, self._dir_fd = self._dir_fd, None
        if fd is not None:
            os.close(fd)

    def announce(self) -> None:
        """Send one byte to every other store's socket; remove the sockets of dead ones."""
        if not self._refresh():
            return
        sender = self._sender
        if sender is None:
            sender = self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.settimeout(0.0)  # non-blocking: a full buffer is skipped, never waited for
        for name in self._names:
            if name != self._name:  # this store's own callbacks already ran
                self._send(sender, name)

    def _refresh(self) -> bool:
        """Re-read the listener names (about 2 us); False if the directory is missing.

        Read on every announce rather than cached by the directory's mtime, whose coarse
        clock could hide a listener that bound just after a listing.
        """
        try:
            self._names = os.listdir(self.directory)  # noqa: PTH208 - the fastest listing
        except OSError:
            return False  # no listener ever bound here
        return True

    def _send(self, sender: socket.socket, name: str) -> None:
        try:
            sender.sendto(b"w", self._address(name))
        except (BlockingIOError, InterruptedError):
            pass  # its buffer is full: it has wake-ups waiting already
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOTSOCK):
                # Nobody reads it: its store closed without cleaning up, or died.
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
            elif exc.errno != errno.ENOENT:
                logger.debug("engagequeue: wake-up to %s failed: %s", name, exc)
