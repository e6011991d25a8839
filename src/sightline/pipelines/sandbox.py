"""User functions run in worker processes, so one that hangs, crashes or leaks cannot take the server down.

A :class:`Sandbox` keeps a few worker processes (started on first use, with ``spawn``: a fresh
interpreter, none of the server's state). A call is sent to an idle worker over a pipe with a deadline;
a worker that misses it is killed and replaced, and one that dies is replaced. Arguments and results
cross as JSON, so a function gets and gives plain data only.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import multiprocessing.connection
import os
from pathlib import Path
from typing import Any

from .loader import FunctionInfo, discover_custom, error_line, load_module, module_functions

MAX_RESULT_BYTES = 10_000_000
STARTUP_TIMEOUT = 60.0


class FunctionFailed(Exception):
    """A function raised, returned what is not JSON, or its worker died. The message is the error's
    type and message only (never the arguments)."""


class FunctionTimeout(FunctionFailed):
    """A function that did not return within its time budget (its worker was killed)."""


def _worker(conn: multiprocessing.connection.Connection) -> None:
    """A worker's loop: imports files it is asked about (cached by path and modification time)."""
    modules: dict[tuple[str, float], dict[str, Any]] = {}
    conn.send_bytes(b"ready")  # imports done: a call's deadline starts from here, not from the spawn
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return
        op, payload = json.loads(request)
        try:
            if op == "call":
                path = Path(payload["file"])
                key = (str(path), path.stat().st_mtime)
                if key not in modules:
                    modules[key] = module_functions(load_module(path))
                fn = modules[key].get(payload["name"])
                if fn is None:
                    raise LookupError(f"{payload['name']} is no longer in {path.name}: sync the functions")
                result = fn(*payload["args"], **payload["kwargs"])
                answer = ["ok", result]
            else:
                found, errors = discover_custom(Path(payload["dir"]) if payload["dir"] else None)
                answer = ["ok", {"functions": [f.to_json() for f in found.values()], "errors": errors}]
            try:
                data = json.dumps(answer).encode()
            except (TypeError, ValueError) as error:
                data = json.dumps(["error", f"the result is not JSON: {error}"]).encode()
            if len(data) > MAX_RESULT_BYTES:
                data = json.dumps(["error", f"the result is over {MAX_RESULT_BYTES} bytes"]).encode()
        except BaseException as error:  # noqa: BLE001 - user code may raise anything
            data = json.dumps(["error", error_line(error)]).encode()
        conn.send_bytes(data)


class _Gone(Exception):
    """The worker had died before a call was sent to it: the call may go to a new one."""


class _Worker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child,), name="sightline-functions", daemon=True)
        self.process.start()
        child.close()
        self.dead = False
        # A fresh interpreter imports for a while (longer on a busy machine): wait for it apart from
        # the deadline of the call it is started for.
        if not self.conn.poll(STARTUP_TIMEOUT) or self.conn.recv_bytes() != b"ready":
            self.kill()
            raise FunctionFailed(f"the functions' worker process did not start within {STARTUP_TIMEOUT:g} s")

    def ask(self, request: bytes, timeout: float) -> Any:
        """Send ``request`` and wait at most ``timeout`` seconds (in a thread: this blocks)."""
        try:
            self.conn.send_bytes(request)
        except OSError:  # it died since its last call (BrokenPipeError): nothing was asked of it
            self.dead = True
            raise _Gone from None
        if not self.conn.poll(timeout):
            raise FunctionTimeout(f"did not return within {timeout:g} s")
        try:
            status, value = json.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            self.dead = True  # its process may not be reaped yet: never hand it another call
            raise FunctionFailed("its worker process died (it crashed or exited)") from None
        if status != "ok":
            raise FunctionFailed(value)
        return value

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(1)
        self.conn.close()


class Sandbox:
    """A few worker processes for user functions, shared by every pipeline run of a server process."""

    def __init__(self, workers: int = 2) -> None:
        self._size = max(1, workers)
        self._idle: list[_Worker] = []
        self._started = 0
        self._free: asyncio.Semaphore | None = None

    async def _run(self, request: bytes, timeout: float) -> Any:
        if self._free is None:
            self._free = asyncio.Semaphore(self._size)
        async with self._free:
            for attempt in (1, 2):
                worker = self._idle.pop() if self._idle else None
                if worker is None or not worker.process.is_alive():
                    if worker is not None:
                        worker.kill()
                    worker = await asyncio.to_thread(_Worker)
                healthy = False
                try:
                    value = await asyncio.to_thread(worker.ask, request, timeout)
                    healthy = True
                    return value
                except _Gone:
                    if attempt == 2:
                        raise FunctionFailed("its worker process died before the call") from None
                except FunctionTimeout:
                    raise  # killed below: it may be running still
                except FunctionFailed:
                    healthy = worker.process.is_alive() and not worker.dead
                    raise
                finally:
                    if healthy:
                        self._idle.append(worker)
                    else:
                        worker.kill()
            raise AssertionError("unreachable")

    async def call(
        self, file: str, name: str, args: list[Any], kwargs: dict[str, Any], timeout: float
    ) -> Any:
        """``name(*args, **kwargs)`` from custom file ``file``, in a worker, within ``timeout`` seconds."""
        request = json.dumps(["call", {"file": file, "name": name, "args": args, "kwargs": kwargs}]).encode()
        return await self._run(request, timeout)

    async def discover(
        self, functions_dir: Path | None, timeout: float
    ) -> tuple[dict[str, FunctionInfo], list[dict[str, str]]]:
        """The custom functions of ``functions_dir`` (imported in a worker) and the errors found."""
        if functions_dir is None:
            return {}, []
        try:
            value = await self._run(
                json.dumps(["discover", {"dir": os.fspath(functions_dir)}]).encode(), timeout
            )
        except FunctionTimeout:
            return {}, [
                {"file": str(functions_dir), "message": f"importing the files took over {timeout:g} s"}
            ]
        except FunctionFailed as error:
            return {}, [{"file": str(functions_dir), "message": str(error)}]
        found = {f["name"]: FunctionInfo.from_json(f) for f in value["functions"]}
        return found, list(value["errors"])

    def close(self) -> None:
        for worker in self._idle:
            worker.kill()
        self._idle.clear()
