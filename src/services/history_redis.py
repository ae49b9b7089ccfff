"""The shared history store for several replicas: Redis (or Valkey), standalone or Sentinel.

Each module is one sorted set of fixed-size records scored by timestamp, under
`<prefix>:m:<module id>`; `<prefix>:modules` scores every module by when it was last
written. One Lua script per module does the read, the append (replacing a reading of the
same timestamp), the trims, the expiry and the module cap atomically; a request's modules
go in one pipeline, so a request costs one round trip whatever its size. The script
deletes evicted modules' keys, which it cannot declare in advance: fine on a standalone
server or Sentinel, not on Redis Cluster (docs/history.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from src.features.engineering import HISTORY_LOOKBACK_S
from src.services.history import (
    HISTORY_RETENTION_S,
    HistoryLimits,
    HistoryUnavailable,
    ModuleReadings,
    pack,
    unpack,
)

# KEYS: the module's set, the modules index.
# ARGV: read from, read to, keep from, keep to, max readings, ttl ms, now, max modules,
#       idle s, module key prefix, module key, then (timestamp, record) pairs.
_EXCHANGE = """
local module, index = KEYS[1], KEYS[2]
local before = redis.call('ZRANGEBYSCORE', module, ARGV[1], ARGV[2])
for i = 12, #ARGV, 2 do
  redis.call('ZREMRANGEBYSCORE', module, ARGV[i], ARGV[i])
  redis.call('ZADD', module, ARGV[i], ARGV[i + 1])
end
redis.call('ZREMRANGEBYSCORE', module, '-inf', '(' .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', module, '(' .. ARGV[4], '+inf')
local count = redis.call('ZCARD', module)
local cap = tonumber(ARGV[5])
if count > cap then redis.call('ZREMRANGEBYRANK', module, 0, count - cap - 1) end
redis.call('PEXPIRE', module, ARGV[6])
local now = tonumber(ARGV[7])
redis.call('ZADD', index, now, ARGV[11])
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (now - tonumber(ARGV[9])))
local evicted = 0
local modules = redis.call('ZCARD', index)
local max_modules = tonumber(ARGV[8])
if modules > max_modules then
  local oldest = redis.call('ZPOPMIN', index, modules - max_modules)
  for i = 1, #oldest, 2 do
    redis.call('DEL', ARGV[10] .. oldest[i])
    evicted = evicted + 1
  end
end
return {evicted, before}
"""


class RedisHistory:
    def __init__(self, url: str, prefix: str, limits: HistoryLimits, timeout_s: float) -> None:
        import redis

        self._redis_errors = (redis.RedisError, OSError)
        self._no_script = redis.exceptions.NoScriptError
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            retry=None,
        )
        self._script = self._client.register_script(_EXCHANGE)
        self._limits = limits
        self._module_prefix = f"{prefix}:m:"
        self._index = f"{prefix}:modules"
        self._url_for_messages = _without_password(url)

    def exchange(
        self, modules: dict[str, ModuleReadings], now: float
    ) -> tuple[dict[str, ModuleReadings], int]:
        limits = self._limits
        calls: list[list[Any]] = []
        for name, new in modules.items():
            oldest, newest = float(new.timestamps_s[0]), float(new.timestamps_s[-1])
            pairs: list[Any] = []
            for timestamp, record in zip(new.timestamps_s.tolist(), pack(new), strict=True):
                pairs += [repr(timestamp), record]
            calls.append(
                [
                    2,
                    self._module_prefix + name,
                    self._index,
                    repr(oldest - HISTORY_LOOKBACK_S),
                    repr(newest),
                    repr(newest - HISTORY_RETENTION_S),
                    repr(newest + HISTORY_RETENTION_S),
                    limits.max_readings,
                    int(limits.idle_s * 1000),
                    repr(now),
                    limits.max_modules,
                    repr(limits.idle_s),
                    self._module_prefix,
                    name,
                    *pairs,
                ]
            )
        try:
            try:
                answers = self._run(calls)
            except self._no_script:  # a restarted or new server: load the script, once
                self._client.script_load(_EXCHANGE)
                answers = self._run(calls)
        except self._redis_errors as error:
            raise HistoryUnavailable(
                f"Redis at {self._url_for_messages}: {type(error).__name__}: {error}"
            ) from None
        stored: dict[str, ModuleReadings] = {}
        evicted = 0
        for (name, new), (evicted_here, records) in zip(modules.items(), answers, strict=True):
            evicted += int(evicted_here)
            before = unpack(records)
            keep = ~np.isin(before.timestamps_s, new.timestamps_s)  # a retry is the request's
            stored[name] = ModuleReadings(before.timestamps_s[keep], before.signals[keep])
        return stored, evicted

    def _run(self, calls: list[list[Any]]) -> list[Any]:
        """EVALSHA per module: directly for one (one round trip), else in one pipeline
        (redis-py's script pipelines would add a SCRIPT EXISTS round trip to each)."""
        sha = self._script.sha
        if len(calls) == 1:
            return [self._client.evalsha(sha, *calls[0])]
        pipeline = self._client.pipeline(transaction=False)
        for call in calls:
            pipeline.evalsha(sha, *call)
        return pipeline.execute()

    def close(self) -> None:
        self._client.close()


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"***@{netloc}"))
