"""Background jobs: handlers by kind, and the runner that claims, runs, retries and schedules them.

The queue itself (table, leases, the writes) is ``sightline.store.jobs``. A feature that needs work
done later registers a handler for its kind (``Handlers.add``) and enqueues jobs
(``Runner.enqueue``); ``sightline serve`` and ``sightline worker`` run them.
"""

from .handlers import Handler, Handlers, Kind
from .runner import Runner

__all__ = ["Handler", "Handlers", "Kind", "Runner"]
