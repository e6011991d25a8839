"""The spool: records that could not be delivered, kept on disk for a later start to send.

Used only when ``SightlineConfig(spool_dir=...)`` is set. The folder (made 0700 when the SDK makes it)
holds, with every file 0600::

    <stamp>-<token>-<count>.<dest>.jsonl.gz                    waiting to be sent
    <stamp>-<token>-<count>.<dest>.jsonl.gz.sending.<pid>.<p>  claimed by the process sending it
    <stamp>-<token>-<count>.<dest>.jsonl.gz.bad                could not be read: set aside, never sent
    .<stamp>-<token>.<pid>.tmp                                 being written

``stamp`` is the writing time in nanoseconds (names sort oldest first), ``count`` the number of
records (what dropping the file costs, known without reading it) and ``dest`` a hash of the server
URL and the API key: a file is only ever sent to the server and key it was written for. A file is
gzipped JSON lines: a header naming the server and a hash of the key (never the key), then one
ingest item (``{"type", "body"}``) a line.

- **Atomic writes**: a file is written under a temporary name, fsynced, then renamed into place,
  so a reader sees a whole file or none.
- **One sender per file**: a process claims a file by renaming it to its ``.sending`` name before
  sending it. A rename is atomic, so of several processes starting at once only one gets each
  file. A claim whose process is gone (or that is older than an hour: another machine's process, a
  reused pid) is taken back the same way. A spool folder is meant for the processes of one machine.
- **Deleted once acknowledged**: a claimed file is deleted as soon as the server has answered for
  all its records; what the server could not take yet goes back to the spool.
- **Bounded**: a new file that would take the folder past ``spool_max_bytes`` first drops the
  oldest waiting files (and set-aside ones), whatever their destination; they are counted as
  dropped and logged (once a minute at most, never their content).
- **Sent in the background**: :class:`Resender` sends a destination's files in a thread of its own
  (started with the exporter's thread), so a server still down holds up no new record; it tries
  again every few minutes while files are left and the process runs.
- **Duplicates**: re-sending a generation is harmless: the server keeps the first copy of an id and
  answers 200 for the next (``InsertGenerations``), and a run sent again is merged into itself
  (``UpsertRuns``). Feedback is not idempotent (each one sent is a row): it could be stored twice if
  a process died between the server's acknowledgement and the deletion of the file (a few
  milliseconds), or exited while a request for it was under way (its file is given back whole).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from sightline.sdk._config import Destination
from sightline.sdk._guard import Throttle, logger
from sightline.sdk._sender import dumps

__all__ = ["Claim", "Elsewhere", "Resender", "Spool", "SpoolError", "Written"]

_VERSION = 1
_SUFFIX = ".jsonl.gz"
_NAME = re.compile(
    r"^(?P<stamp>\d{20})-(?P<token>[0-9a-f]+)-(?P<count>\d+)\.(?P<dest>[0-9a-f]{16})\.jsonl\.gz"
    r"(?:\.sending\.(?P<pid>\d+)\.(?P<proc>[0-9a-f]+)|(?P<bad>\.bad))?$"
)
_TEMP = re.compile(r"^\.\d{20}-[0-9a-f]+\.\d+\.tmp$")
# A claim (or a temporary file) older than this is taken back whoever made it: its process is
# another machine's, or its pid was reused. Longer than any one file's retries (max_retry_seconds).
STALE_SECONDS = 3600.0
_GZIP_LEVEL = 1
# Seconds between two attempts at sending the spool while the server does not take it.
_RESEND_PAUSE = 180.0


class SpoolError(Exception):
    """A spool file that cannot be read: set aside, never sent."""


class Elsewhere(Exception):
    """A spool file whose header names another destination than its name said (left alone)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A spool file this process has claimed (renamed to ``path``) from its waiting ``name``."""

    folder: str
    name: str
    path: str
    stamp: str
    count: int


class Written(NamedTuple):
    """What became of records handed to :meth:`Spool.write`."""

    kept: int
    dropped: int
    failed: int


class _Process:
    """This process's claim suffix, made again after a fork (a child is another claimant)."""

    pid = -1
    token = ""

    @classmethod
    def current(cls) -> tuple[int, str]:
        pid = os.getpid()
        if pid != cls.pid:
            cls.pid, cls.token = pid, secrets.token_hex(4)
        return cls.pid, cls.token


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (True when that cannot be known)."""
    if sys.platform == "win32":
        return True  # os.kill would end it: only the claim's age counts there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def key_hash(api_key: str) -> str:
    """What a spool file records of the API key: enough to tell keys apart, useless to a reader."""
    return hashlib.sha256(b"sightline-spool\0" + api_key.encode()).hexdigest()[:32]


class Spool:
    """The spool folder as one destination sees it. Safe to use from several threads and processes."""

    def __init__(self, dest: Destination) -> None:
        if dest.spool_dir is None:
            raise ValueError("a spool needs Destination.spool_dir")
        self.folder = dest.spool_dir
        self.max_bytes = dest.spool_max_bytes
        self._header = {"sightlineSpool": _VERSION, "server": dest.server_url, "key": key_hash(dest.api_key)}
        self._dest = hashlib.sha256(f"{dest.server_url}\n{self._header['key']}".encode()).hexdigest()[:16]
        self._throttle = Throttle()

    # -- writing -----------------------------------------------------------------------------

    def write(self, items: list[Any], stamp: str | None = None, bounded: bool = True) -> Written:
        """Keep ``items`` (ingest items) in one new file; never raises.

        ``stamp`` keeps a file's place in the order (what is left of a file sent in part);
        ``bounded=False`` skips making room (that file replaces a bigger one).
        """
        lines, failed = [], 0
        for item in items:
            try:
                lines.append(dumps(item))
            except Exception:  # what cannot be JSON could not have been sent either
                failed += 1
        if not lines:
            return Written(0, 0, failed)
        header = dumps({**self._header, "count": len(lines)})
        packer = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip format
        data = packer.compress(b"\n".join([header, *lines])) + packer.flush()
        stamp = stamp or f"{time.time_ns():020d}"
        stem = f"{stamp}-{secrets.token_hex(4)}"
        name = f"{stem}-{len(lines)}.{self._dest}{_SUFFIX}"
        dropped = 0
        try:
            self._make_folder()
            if bounded:
                dropped, fits = self._make_room(len(data))
                if not fits:
                    self._note_full(dropped + len(lines))
                    return Written(0, dropped + len(lines), failed)
            self._write_file(f".{stem}.{os.getpid()}.tmp", name, data)
        except OSError as exc:
            if self._throttle.ready("write"):
                logger.warning(
                    "sightline: cannot write to the spool %s (%s); %d records are lost",
                    self.folder,
                    exc.strerror or type(exc).__name__,
                    len(lines),
                )
            return Written(0, dropped, failed + len(lines))
        if dropped:
            self._note_full(dropped)
        return Written(len(lines), dropped, failed)

    def _make_folder(self) -> None:
        if not os.path.isdir(self.folder):
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            os.chmod(self.folder, 0o700)  # makedirs' mode is masked by the umask

    def _write_file(self, temp: str, name: str, data: bytes) -> None:
        temp_path = os.path.join(self.folder, temp)
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp_path, os.path.join(self.folder, name))
        except BaseException:
            _remove(temp_path)
            raise
        self._sync_folder()

    def _sync_folder(self) -> None:
        """Make the rename itself durable (POSIX: the folder's entry is data of the folder)."""
        if sys.platform == "win32":
            return
        try:
            fd = os.open(self.folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot sync a folder: the file itself is synced
        finally:
            os.close(fd)

    def _make_room(self, size: int) -> tuple[int, bool]:
        """Drop the oldest waiting or set-aside files until ``size`` more bytes fit: (dropped, fits)."""
        if size > self.max_bytes:
            return 0, False  # would not fit in an empty spool: it goes, not what is there
        total, droppable = 0, []
        now = time.time()
        with os.scandir(self.folder) as entries:
            for entry in entries:
                try:
                    stat = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                match = _NAME.match(entry.name)
                if match is None:
                    if _TEMP.match(entry.name) and now - stat.st_mtime > STALE_SECONDS:
                        _remove(entry.path)  # left by a process that died while writing
                    continue
                total += stat.st_size
                if match["pid"] is None:
                    count = 0 if match["bad"] else int(match["count"])
                    droppable.append((entry.name, entry.path, stat.st_size, count))
        droppable.sort()
        dropped = 0
        for _, path, file_size, count in droppable:
            if total + size <= self.max_bytes:
                break
            if _remove(path):
                dropped += count
            total -= file_size  # gone either way (another process may have sent or dropped it)
        return dropped, total + size <= self.max_bytes

    def _note_full(self, dropped: int) -> None:
        if self._throttle.ready("full"):
            logger.warning(
                "sightline: the spool %s is full (spool_max_bytes=%d); dropped %d of the oldest records",
                self.folder,
                self.max_bytes,
                dropped,
            )

    # -- sending -----------------------------------------------------------------------------

    def claims(self) -> Iterator[Claim]:
        """Claim this destination's waiting files one at a time, oldest first (and stale claims)."""
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            return
        pid, proc = _Process.current()
        for name in names:
            match = _NAME.match(name)
            if match is None or match["dest"] != self._dest or match["bad"]:
                continue
            if match["pid"] is not None and not self._stale(name, int(match["pid"]), match["proc"]):
                continue
            waiting = name.split(".sending.")[0]
            path = os.path.join(self.folder, name)
            claimed = os.path.join(self.folder, f"{waiting}.sending.{pid}.{proc}")
            try:
                os.rename(path, claimed)  # only one claimant's rename finds the file
            except FileNotFoundError:
                continue
            except OSError as exc:
                if self._throttle.ready("claim"):
                    reason = exc.strerror or type(exc).__name__
                    logger.warning("sightline: cannot claim a spool file in %s (%s)", self.folder, reason)
                return
            with contextlib.suppress(OSError):
                os.utime(claimed)  # the claim's age starts now
            yield Claim(self.folder, waiting, claimed, match["stamp"], int(match["count"]))

    def _stale(self, name: str, pid: int, proc: str) -> bool:
        """Whether a claim's process is gone (its pid is dead, or is this process's but not its claim)."""
        own_pid, own_proc = _Process.current()
        if pid == own_pid:
            return proc != own_proc  # an earlier process with this pid (a container's pid 1)
        if not _alive(pid):
            return True
        try:
            return time.time() - os.stat(os.path.join(self.folder, name)).st_mtime > STALE_SECONDS
        except OSError:
            return False

    def read(self, claim: Claim) -> list[Any]:
        """The items of a claimed file. Raises :class:`SpoolError` when it cannot be read whole, and
        :class:`Elsewhere` when it was written for another destination."""
        try:
            with open(claim.path, "rb") as file:
                raw = zlib.decompress(file.read(), 47)  # 47: gzip or zlib, checked
            header, *lines = raw.split(b"\n")
            head = json.loads(header)
            items = [json.loads(line) for line in lines]
        except (OSError, ValueError, zlib.error) as exc:
            raise SpoolError(type(exc).__name__) from exc
        if not isinstance(head, dict) or head.get("sightlineSpool") != _VERSION:
            raise SpoolError("not a spool file of this version")
        if head.get("server") != self._header["server"] or head.get("key") != self._header["key"]:
            raise Elsewhere
        if head.get("count") != len(items) or len(items) != claim.count:
            raise SpoolError("records are missing")
        for item in items:
            if not (isinstance(item, dict) and isinstance(item.get("type"), str) and "body" in item):
                raise SpoolError("not an ingest item")
        return items

    def done(self, claim: Claim) -> None:
        """Delete a claimed file: the server answered for all its records."""
        _remove(claim.path)

    def release(self, claim: Claim) -> None:
        """Give a claimed file back, as it was, to whoever sends next."""
        # Fails only when the claim was taken back as stale meanwhile, or the folder is gone.
        with contextlib.suppress(OSError):
            os.rename(claim.path, os.path.join(claim.folder, claim.name))

    def set_aside(self, claim: Claim, reason: str) -> None:
        """Move an unreadable file out of the way (``.bad``), logged once a minute at most."""
        try:
            os.rename(claim.path, os.path.join(claim.folder, claim.name + ".bad"))
        except OSError:
            _remove(claim.path)
        if self._throttle.ready("bad"):
            logger.warning(
                "sightline: set aside the unreadable spool file %s (%s)",
                os.path.join(claim.folder, claim.name + ".bad"),
                reason,
            )


def _remove(path: str) -> bool:
    try:
        os.remove(path)
    except OSError:
        return False
    return True


class Resender:
    """Sends a destination's spooled files in a thread of its own, so a server still down holds up no
    new record.

    Started with the exporter thread, and again (after a pause) whenever the exporter spools records
    while it runs, or while files are left that the server did not take. ``send`` sends a file's
    items and returns those the server did not take; ``closing`` is the exporter's (it cuts retries
    short); ``report`` is told of a bug.
    """

    def __init__(
        self,
        spool: Spool,
        send: Callable[[list[Any]], list[Any]],
        closing: threading.Event,
        report: Callable[[str, BaseException], None],
    ) -> None:
        self._spool = spool
        self._send = send
        self._closing = closing
        self._report = report
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False  # a pass is wanted (files were written or left since the last one)
        self._stopped = False
        self._claim: Claim | None = None
        self.idle = threading.Event()
        """Set while no file is being sent (a flush waits for it)."""
        self.idle.set()

    def start(self, later: bool = False) -> None:
        """Send the spool now (or after a pause, ``later``), unless a thread is at it: it goes on."""
        with self._lock:
            self._again = True
            if self._thread is not None or self._stopped or self._closing.is_set():
                return
            if not later:
                self.idle.clear()
            self._thread = threading.Thread(
                target=self._run, args=(_RESEND_PAUSE if later else 0.0,), name="sightline-spool", daemon=True
            )
            self._thread.start()

    def stop(self, deadline: float) -> None:
        """Wait for the thread (the exporter's ``closing`` is set) until ``deadline``; give back its file."""
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._stopped = True
            if self._claim is not None:
                self._spool.release(self._claim)  # sent by the next start
                self._claim = None

    def _run(self, pause: float) -> None:
        me = threading.current_thread()
        try:
            while True:
                with self._lock:
                    if not self._again or self._stopped:
                        self._thread = None  # decided under the lock: a new file starts a new thread
                        self.idle.set()
                        return
                if pause:
                    self.idle.set()
                    if self._closing.wait(pause):
                        return
                    self.idle.clear()
                with self._lock:
                    self._again = False
                if self._send_files():
                    with self._lock:
                        self._again = True  # the server did not take them all: later
                pause = _RESEND_PAUSE
        except Exception as exc:  # a bug here must not reach the application
            self._report("sending the spool", exc)
        finally:
            with self._lock:
                if self._thread is me:
                    self._thread = None
                    self.idle.set()

    def _send_files(self) -> bool:
        """Send each of this destination's spooled files; True when one could not be delivered."""
        spool = self._spool
        for claim in spool.claims():
            with self._lock:
                if self._stopped:
                    spool.release(claim)
                    return False
                self._claim = claim
            try:
                items = spool.read(claim)
            except Elsewhere:  # not this destination's after all (its name said otherwise): left alone
                if not self._settle(claim, spool.release):
                    return False
                continue
            except SpoolError as exc:
                if not self._settle(claim, functools.partial(spool.set_aside, reason=str(exc))):
                    return False
                continue
            left = self._send(items)
            if not self._settle(claim, functools.partial(self._sent, items=items, left=left)):
                return False
            if left:
                return True
        return False

    def _settle(self, claim: Claim, action: Callable[[Claim], None]) -> bool:
        """Do what becomes of a claimed file, unless :meth:`stop` gave it back already (then False)."""
        with self._lock:
            if self._stopped:
                return False
            self._claim = None
            action(claim)
            return True

    def _sent(self, claim: Claim, items: list[Any], left: list[Any]) -> None:
        spool = self._spool
        if not left:
            # Deleted as soon as it was acknowledged: only feedback would be stored twice if the process
            # died right here.
            spool.done(claim)
        elif len(left) < len(items) and spool.write(left, claim.stamp, bounded=False).kept:
            spool.done(claim)  # what is left of it, in its place in the order
        else:
            spool.release(claim)  # as it was (what was delivered is harmless to send again)
