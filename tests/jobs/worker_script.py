"""A job runner in a process of its own, for the tests: ``python worker_script.py MODE DATABASE_URL FOLDER``.

``drain``: say it is ready, wait for the file ``go``, then run jobs of kind ``work`` (noting each job's id
in a file of its own) until none is due. ``hang``: claim one job of kind ``work``, note its id in
``claimed``, and never finish it (the test kills the process).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sightline.jobs import Handlers, Runner
from sightline.store import Database
from sightline.store.engine.writer import WriteOp
from sightline.store.jobs import Job


async def main(mode: str, url: str, folder: Path) -> None:
    db = Database(url)
    db.start()
    handlers = Handlers()
    if mode == "drain":
        ran = folder / f"ran-{os.getpid()}"

        async def record(job: Job) -> WriteOp | None:
            with ran.open("a") as out:
                out.write(f"{job.id}\n")
            await asyncio.sleep(0.005)  # let the other process claim meanwhile
            return None

        handlers.add("work", record)
        runner = Runner(db, handlers, concurrency=4)
        (folder / f"ready-{os.getpid()}").touch()
        while not (folder / "go").exists():
            await asyncio.sleep(0.01)
        while await runner.run_once():
            pass
    else:

        async def hang(job: Job) -> WriteOp | None:
            (folder / "claimed").write_text(str(job.id))
            await asyncio.Event().wait()
            return None

        handlers.add("work", hang)
        await Runner(db, handlers, lease=60).run_once()
    db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
