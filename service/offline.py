"""The face library as CLI commands (import, restore) use it: in-process against Redis, with
no index. Their writes go through the same Lua scripts and change stream as the service's;
serving processes pick them up from the stream, so holding an index here would only cost
memory."""
from __future__ import annotations

import redis

from index.registry import IndexRegistry
from service.library import Library


class StreamOnly:
    """Stands in for ``IndexSync`` where no index is held: there is nothing to catch up."""

    def catch_up(self) -> int:
        return 0


def offline_library(client: redis.Redis, model_id: str) -> Library:
    """A Library whose writes stamp faces with ``model_id``; its empty registry is never
    searched (identify is the service's)."""
    return Library(client, IndexRegistry(0), StreamOnly(), model_id)
