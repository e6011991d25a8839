"""Background jobs: handlers by kind, and the runner that claims, runs, retries and schedules them.

The queue itself (table, leases, the writes) is ``sightline.store.jobs``. A feature that needs work
done later registers a handler for its kind (``Handlers.add``) and enqueues jobs
(``Runner.enqueue``); ``sightline serve`` and ``sightline worker`` run them.
"""

from .builtin import PRUNE_KIND, prune_finished
from .handlers import Handler, Handlers, Kind
from .runner import Runner

__all__ = ["PRUNE_KIND", "Handler", "Handlers", "Kind", "Runner", "prune_finished"]
