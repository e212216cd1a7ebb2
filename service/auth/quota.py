"""Request quotas: per-app QPS, daily and total limits and a cluster-wide QPS limit (spec §1.15
codes 18, 17, 19 and 4), counted in Redis so that every worker process and node shares them.

Each counter hash holds, per window length, the window's start and its count. One Lua script
reads and bumps all windows of a hash at once, with Redis's clock (TIME), so concurrent requests
on any node never both take the last unit and node clocks need not agree. A request refused
by one window counts in no window of that hash.
"""
from __future__ import annotations

import redis

from config.defaults import Quotas
from service.store import keys
from service.errors import FaceError

DAY = 86400
FOREVER = 0  # window length of a counter that never resets

# KEYS[1] the counter hash; ARGV triples: window length in seconds (0: forever), limit, code.
# Windows start at multiples of their length (a day starts at 00:00 UTC).
_ADMIT = """
local now = tonumber(redis.call('TIME')[1])
local updates = {}
for i = 1, #ARGV, 3 do
  local window, limit = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local start = 0
  if window > 0 then start = now - now % window end
  local stored = redis.call('HMGET', KEYS[1], window .. ':start', window .. ':count')
  local count = 0
  if tonumber(stored[1]) == start then count = tonumber(stored[2]) end
  if count >= limit then return tonumber(ARGV[i + 2]) end
  table.insert(updates, window .. ':start')
  table.insert(updates, start)
  table.insert(updates, window .. ':count')
  table.insert(updates, count + 1)
end
if #updates > 0 then redis.call('HSET', KEYS[1], unpack(updates)) end
return 0
"""


class Quota:
    """Admits or refuses each authenticated request of an app."""

    def __init__(self, client: redis.Redis, quotas: Quotas) -> None:
        self._admit = client.register_script(_ADMIT)
        self.cluster = _windows((1, quotas.cluster_qps, 4))
        # The most lasting refusal first: a caller told 19 or 17 knows retrying soon is futile.
        self.app = _windows((FOREVER, quotas.app_total, 19), (DAY, quotas.app_daily, 17), (1, quotas.app_qps, 18))

    def admit(self, app: str) -> None:
        """Count one request of ``app``; FaceError 4, 19, 17 or 18 when a quota is used up.

        The cluster limit is checked first so that shed load does not use up an app's quota.
        """
        for key, windows in ((keys.cluster_quota(), self.cluster), (keys.quota(app), self.app)):
            if windows:
                code = int(self._admit(keys=[key], args=windows))
                if code:
                    raise FaceError(code, f"quota of app {app}")


def _windows(*windows: tuple[int, int, int]) -> list[int]:
    """The script's ARGV for the windows whose limit is set (0 = off)."""
    return [value for window in windows if window[1] > 0 for value in window]
