"""What the runner knows how to do: a handler for each kind of job, and which kinds run periodically.

A handler is an async function of the claimed :class:`~sightline.store.jobs.Job`. It does the slow
part (calls a model, reads what it needs), then answers the write that records its outcome, a
``WriteOp`` or ``None``: the runner hands that write to the single writer together with the job's
completion, so both commit or neither does (a job whose lease passed to another worker writes
nothing). An exception is a failed attempt, retried with back-off. Like every write, it may travel
to a writer process: a dataclass of plain values (it is pickled), doing only database work in
``apply``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from ..store.engine.writer import WriteOp
from ..store.jobs import Job

__all__ = ["Handler", "Handlers", "Kind"]

Handler = Callable[[Job], Awaitable[WriteOp | None]]


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of job: its handler, its attempts (``None``: the runner's default) and, for a periodic
    kind, the seconds between runs."""

    name: str
    handler: Handler
    max_attempts: int | None = None
    every: float | None = None


class Handlers:
    """The kinds of job one process runs, by name."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def add(
        self, name: str, handler: Handler, *, max_attempts: int | None = None, every: float | None = None
    ) -> None:
        """Run jobs of kind ``name`` with ``handler``; with ``every``, also enqueue one every ``every``
        seconds (each process enqueues it; one job a period results)."""
        if name in self._kinds:
            raise ValueError(f"a handler for jobs of kind {name!r} is registered already")
        if not 0 < len(name) <= 64:
            raise ValueError("a job kind has 1 to 64 characters")
        if every is not None and every <= 0:
            raise ValueError("a periodic job needs a period above zero")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("a job needs at least one attempt")
        self._kinds[name] = Kind(name, handler, max_attempts, every)

    def get(self, name: str) -> Kind | None:
        """The kind called ``name``, if this process runs it."""
        return self._kinds.get(name)

    def names(self) -> tuple[str, ...]:
        """The kinds this process runs."""
        return tuple(self._kinds)

    def periodic(self) -> Iterator[Kind]:
        """The kinds enqueued periodically."""
        return (kind for kind in self._kinds.values() if kind.every is not None)
