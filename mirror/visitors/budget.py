"""The visitors' turn budget: how many turns one visitor may send over a period (``--visitor-turns 20/hour``).

Why: a shared link hands strangers the host's ZeroGPU quota (no visitor brings an ``x-ip-token`` on a plain
machine). A budget per visitor keeps one visitor from spending it all, while the others chat on.

One ``Budget`` serves the whole app (app.py makes it and hands it to the chat service and the QA tab); the chat,
the ``/chat`` API, the QA tab and the OpenAI API all count against it, through the same two calls:

    verdict = budget.spend(visitor.client)    # a mirror.visitors.identity.Visitor, read once at the edge
    if isinstance(verdict, OverBudget):
        raise ...(verdict.sentence())                              # "You have used your 20 turns this hour; ..."

``check`` answers without spending; ``refund`` gives back a turn that was refused before anything reached the
Space; ``left`` and ``describe`` say what is left (the badge). A visitor is ``user:NAME`` when logged in, else
``addr:HOST`` (``mirror.visitors.identity``: the same key as the per-client turn cap's). Logins named with
``--admin`` are exempt. The window slides: a turn counts for ``period_s`` seconds after it was sent, so a visitor
at the limit can chat again when their oldest counted turn ages out. The clock is injectable so tests need not
wait an hour.

Kept in memory (a restart forgets the counts; the usage store keeps the history). Bounded: visitors whose turns
have all aged out are dropped, and at most ``max_visitors`` are kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

# The rule (``Rule``, ``N/PERIOD`` parsed by ``parse_rule``) is read with the other flags in ``mirror.settings``, the
# bottom of the app's layers; named here too, where the budget has always offered it.
from ..settings import SHARE_DEFAULT as SHARE_DEFAULT
from ..settings import Rule as Rule
from ..settings import parse_rule as parse_rule


@dataclass(frozen=True)
class Ok:
    """The turn may go (and, after ``spend``, is counted). ``left``: turns left after it; None = no limit."""

    left: int | None


@dataclass(frozen=True)
class OverBudget:
    """The visitor is at the limit until ``retry_at`` (unix seconds, the clock's); ``now`` is when that was said."""

    retry_at: float
    limit: int
    words: str
    now: float

    def sentence(self) -> str:
        """One sentence a visitor reads: when they can chat again, as a UTC clock time and in minutes."""
        wait = max(0.0, self.retry_at - self.now)
        at = datetime.fromtimestamp(self.retry_at, tz=UTC)
        clock = at.strftime("%H:%M:%S" if wait < 120 else "%H:%M")
        minutes = max(1, int(-(-wait // 60)))
        return (f"You have used your {self.limit} turn{'s' * (self.limit != 1)} per {self.words} on this app; you "
                f"can chat again at {clock} UTC (in {minutes} minute{'s' * (minutes != 1)}).")

    def badge(self) -> str | None:
        """The badge's words when they are not "0 of N turns left" (see ``Budget.describe``); None: those."""
        return None


Verdict = Ok | OverBudget


class Budget:
    """Turns per visitor over a sliding window (see the module's docstring). Thread-safe: gradio runs sync
    handlers in worker threads and async ones in its loop. ``shared_budget.SharedBudget`` (beside this module) is
    the same budget counted in a file that every replica on the host shares, ``redis_budget.RedisBudget`` in a Redis
    server that replicas on several hosts share."""

    blocking = False  # True: a call may wait on a file (the chat service then makes it in a thread)

    def __init__(self, rule: Rule | None, admins: Iterable[str] = (), clock: Callable[[], float] = time.time,
                 max_visitors: int = 50_000) -> None:
        self.rule = rule
        self.admins = frozenset(admins)
        self.clock = clock
        self.max_visitors = max_visitors
        self._turns: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def exempt(self, visitor: str) -> bool:
        """No limit for this visitor: no budget at all, or an ``--admin`` login."""
        return self.rule is None or (visitor.startswith("user:") and visitor[5:] in self.admins)

    def _recent(self, visitor: str, now: float) -> deque[float]:
        stamps = self._turns.get(visitor)
        if stamps is None:
            return deque()
        assert self.rule is not None
        while stamps and stamps[0] <= now - self.rule.period_s:
            stamps.popleft()
        if not stamps:
            del self._turns[visitor]
        return stamps

    def _verdict(self, stamps: deque[float], now: float) -> Verdict:
        assert self.rule is not None
        if len(stamps) >= self.rule.turns:
            return OverBudget(stamps[-self.rule.turns] + self.rule.period_s, self.rule.turns, self.rule.words, now)
        return Ok(self.rule.turns - len(stamps))

    def check(self, visitor: str) -> Verdict:
        """Whether ``visitor`` may send a turn now, without counting one."""
        if self.exempt(visitor):
            return Ok(None)
        with self._lock:
            now = self.clock()
            return self._verdict(self._recent(visitor, now), now)

    def spend(self, visitor: str) -> Verdict:
        """Count one turn for ``visitor`` if the budget allows it: ``Ok(left after it)`` or ``OverBudget``
        (nothing counted). Check and count happen under one lock, so concurrent turns cannot both slip in."""
        if self.exempt(visitor):
            return Ok(None)
        with self._lock:
            now = self.clock()
            stamps = self._recent(visitor, now)
            verdict = self._verdict(stamps, now)
            if isinstance(verdict, OverBudget):
                return verdict
            stamps.append(now)
            self._turns[visitor] = stamps
            self._turns.move_to_end(visitor)
            while len(self._turns) > self.max_visitors:
                self._turns.popitem(last=False)
            return Ok(None if verdict.left is None else verdict.left - 1)

    def refund(self, visitor: str) -> None:
        """Give back the visitor's latest turn: it was refused before anything reached the Space."""
        if self.exempt(visitor):
            return
        with self._lock:
            stamps = self._turns.get(visitor)
            if stamps:
                stamps.pop()

    def left(self, visitor: str) -> int | None:
        """Turns ``visitor`` may still send in the current window; None = no limit."""
        verdict = self.check(visitor)
        return 0 if isinstance(verdict, OverBudget) else verdict.left

    def describe(self, visitor: str) -> str:
        """For the badge: "12 of 20 turns left this hour", or "" when this visitor has no limit."""
        if self.rule is None:
            return ""
        if self.exempt(visitor):
            return "no turn limit for the host"
        verdict = self.check(visitor)
        if isinstance(verdict, OverBudget) and (words := verdict.badge()):
            return words
        left = 0 if isinstance(verdict, OverBudget) else verdict.left
        period = f"this {self.rule.words}" if " " not in self.rule.words else f"per {self.rule.words}"
        return f"{left} of {self.rule.turns} turns left {period}"
