"""The visitors' turn budget counted in Redis, shared by replicas on several hosts (``--budget-store redis://...``).

Why: ``mirror.visitors.shared_budget.SharedBudget`` shares the budget through one SQLite file, which only processes
of one host can open. Replicas on several hosts (each behind its own nginx, or one balancer in front of them all) point
at one Redis server instead, with the same flag on each: ``--budget-store redis://[:PASSWORD@]HOST:PORT/DB`` (or
env ``PHI4_BUDGET_STORE``; ``rediss://`` for TLS, ``unix:///path/redis.sock`` too). Then a visitor gets the host's
turns whichever replica on whichever host answers.

How: one sorted set per visitor (``phi4-mirror:budget:<visitor>``), a member per counted turn, scored by when it was
sent. Checking and counting happen in one Lua script, which Redis runs atomically: aged-out turns dropped, the rest
counted, the turn added only if that count is under the limit. So two replicas cannot both let a visitor's last turn
through (``tests/test_redis_budget.py`` races four processes). A refund is one ``ZPOPMAX`` (the visitor's latest
turn), atomic too. The clock is Redis's own (``TIME``), so replicas on hosts whose clocks differ still count one
window; a test may inject a clock instead. Each set expires one period after its latest turn, so visitors who
stopped chatting cost nothing.

When Redis cannot be reached at start, the app refuses to start with one sentence (``StoreUnreachable``): counting
alone would quietly give visitors N times their turns. When it stops answering later, a turn is refused with a
sentence (``StoreDown``) rather than let through uncounted. The URL's password never reaches a log line or an
error: ``redact`` replaces it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..settings import Rule
from ..settings import redact as redact  # where --budget-store is checked; named here too
from .budget import Budget, Ok, OverBudget, Verdict

log = logging.getLogger(__name__)

PREFIX = "phi4-mirror:budget:"
INSTALL = "pip install 'phi4-mirror[cluster]' (or pip install -r requirements.txt)"
TIMEOUT_S = 2.0  # a Redis on the same network answers in a millisecond; a turn must not hang on a dead one
RETRY_S = 60.0  # a turn refused while the store is down: try again in a minute

# KEYS[1]: the visitor's set. ARGV: now (empty: Redis's clock), period_s, limit, spend (1/0), member.
# Returns {allowed (1/0), turns counted now, the score of the turn whose ageing out frees a turn (or ""), now}.
SCRIPT = """
local now = tonumber(ARGV[1])
local clock = ARGV[1]
if not now then
  local t = redis.call('TIME')
  clock = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  now = tonumber(clock)
end
local period, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return {0, n, oldest[2], clock}
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000))
  n = n + 1
end
return {1, n, '', clock}
"""


class StoreUnreachable(RuntimeError):
    """Redis did not answer at start; ``str()`` is the sentence the app prints (no password in it)."""


@dataclass(frozen=True)
class StoreDown(OverBudget):
    """The store stopped answering: the turn is refused (not let through uncounted), with its own sentence."""

    def sentence(self) -> str:
        return ("The app cannot count turns right now (its budget store does not answer), so this turn was not "
                "sent; try again in a minute.")

    def badge(self) -> str:
        return "turns cannot be counted right now (the budget store does not answer)"


class RedisBudget(Budget):
    """A ``Budget`` whose stamps live in Redis (see the module's docstring). Blocking: each call is a round trip,
    made in a thread by the chat service."""

    blocking = True

    def __init__(self, rule: Rule | None, url: str, admins: Iterable[str] = (),
                 clock: Callable[[], float] | None = None, prefix: str = PREFIX) -> None:
        super().__init__(rule, admins)
        self.url = url
        self.where = redact(url)
        self.prefix = prefix
        self._clock = clock  # None: Redis's own clock, one for every host
        self._redis, self._errors = connect(url, "The turn budget's store", "; every replica counts the budget "
                                            "there, so the app does not start without it: start Redis there, or fix "
                                            "--budget-store (env PHI4_BUDGET_STORE)")
        self._script = self._redis.register_script(SCRIPT)
        self._down_logged = threading.Event()

    def _run(self, visitor: str, spend: bool) -> Verdict:
        assert self.rule is not None
        now = "" if self._clock is None else repr(self._clock())
        member = secrets.token_hex(8)
        try:
            allowed, counted, oldest, clock = self._script(keys=[self.prefix + visitor],
                                                     args=[now, self.rule.period_s, self.rule.turns,
                                                           int(spend), member])
        except self._errors as exc:
            return self._down(exc)
        self._down_logged.clear()
        counted_now = float(clock)
        if int(allowed):
            return Ok(self.rule.turns - int(counted))
        return OverBudget(float(oldest) + self.rule.period_s, self.rule.turns, self.rule.words, counted_now)

    def _down(self, exc: BaseException) -> StoreDown:
        if not self._down_logged.is_set():  # once per outage, not once per turn
            self._down_logged.set()
            log.warning("the turn budget's store %s does not answer (%s): turns are refused until it does",
                        self.where, _why(exc, self.url))
        now = self._clock() if self._clock is not None else time.time()
        assert self.rule is not None
        return StoreDown(now + RETRY_S, self.rule.turns, self.rule.words, now)

    def check(self, visitor: str) -> Verdict:
        if self.exempt(visitor):
            return Ok(None)
        return self._run(visitor, spend=False)

    def spend(self, visitor: str) -> Verdict:
        """Check and count in one Lua script (atomic in Redis): concurrent turns of one visitor on any replica of
        any host cannot all slip in."""
        if self.exempt(visitor):
            return Ok(None)
        return self._run(visitor, spend=True)

    def refund(self, visitor: str) -> None:
        if self.exempt(visitor):
            return
        try:
            self._redis.zpopmax(self.prefix + visitor)
        except self._errors as exc:
            log.warning("could not give back a turn in %s (%s)", self.where, _why(exc, self.url))

    def close(self) -> None:
        self._redis.close()


def connect(url: str, what: str, advice: str = "") -> tuple[Any, tuple[type[BaseException], ...]]:
    """A Redis client for ``url`` that has answered a PING, and the errors its calls raise; ``StoreUnreachable``
    (``what`` cannot be reached, why, then ``advice``; never the password) when it does not answer or redis-py is
    not installed. The budget and the usage log each hold one."""
    try:
        import redis
    except ImportError as exc:
        raise StoreUnreachable(f"--budget-store {redact(url)} needs the redis package, which is not installed: "
                               f"{INSTALL}") from exc
    errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
    try:
        client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                      decode_responses=True)
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise StoreUnreachable(f"{what} {redact(url)} cannot be reached ({_why(exc, url)}){advice}") from None
    return client, errors


def _why(exc: BaseException, url: str) -> str:
    """The error's own words, short, without the URL's password (redis-py may quote the URL)."""
    text = str(exc) or type(exc).__name__
    password = urlsplit(url).password if "://" in url else None
    if password:
        text = text.replace(password, "***")
    return text.splitlines()[0][:200]
