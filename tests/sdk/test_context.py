"""sightline.context: per thread and per asyncio task."""

from __future__ import annotations

import asyncio
import threading

import pytest

import sightline
from sightline.sdk._context import current_scope


def test_nested_blocks_merge() -> None:
    with sightline.context(user_id="u1", metadata={"a": "1", "b": "1"}):
        with sightline.context(session_id="s", metadata={"b": "2"}) as scope:
            assert scope.user_id == "u1" and scope.session_id == "s"
            assert scope.metadata == {
                "a": {"type": "string", "value": "1"},
                "b": {"type": "string", "value": "2"},
            }
        assert current_scope().session_id is None  # type: ignore[union-attr]
    assert current_scope() is None


def test_threads_do_not_see_each_others_context() -> None:
    seen: dict[str, str | None] = {}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        with sightline.context(user_id=name):
            barrier.wait()
            scope = current_scope()
            seen[name] = scope.user_id if scope else None

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": "a", "b": "b"}


async def test_asyncio_tasks_do_not_see_each_others_context() -> None:
    async def work(name: str) -> str | None:
        async with sightline.context(user_id=name):
            await asyncio.sleep(0.01)
            scope = current_scope()
            return scope.user_id if scope else None

    assert await asyncio.gather(work("a"), work("b")) == ["a", "b"]


def test_bad_metadata_is_refused_at_the_block() -> None:
    with pytest.raises(ValueError, match="metadata key 'x'"):
        sightline.context(metadata={"x": [1, 2]})
