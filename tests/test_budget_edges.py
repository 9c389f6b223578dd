"""The edges of the visitors' turn budget (mirror/visitors/budget.py) that the mutation check (tests/README.md) found
unguarded: the smallest budget, the words that switch it off, who is forgotten when the table is full, the badge
for a period of several units, and the sentence's clock (UTC whatever the host's zone, seconds under two minutes,
minutes rounded up). Pure functions on an explicit clock; each test names the break it catches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from starlette.requests import Request

from mirror.visitors.budget import Budget, Ok, OverBudget, Rule, parse_rule
from mirror.visitors.identity import Visitor

RETRY = datetime(2026, 11, 28, 15, 42, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("text", ["1/hour", "1/10s"])
def test_a_budget_of_one_turn_is_a_budget(text: str) -> None:
    """``1/hour`` is the strictest budget a host may set, not a mistake (caught: ``turns < 1`` made ``<= 1``)."""
    rule = parse_rule(text)
    assert rule is not None and rule.turns == 1


@pytest.mark.parametrize("text", ["off", "OFF", "0", "", "  none  "])
def test_every_word_for_no_budget_switches_it_off(text: str) -> None:
    """``--visitor-turns off`` (or ``0``, or empty, as an unset env var gives) means no budget, not an error
    (caught: any of those words dropped from the list)."""
    assert parse_rule(text) is None


def test_a_period_of_several_units_reads_per_on_the_badge() -> None:
    """"1 of 2 turns left per 10 seconds", not "this 10 seconds" (caught: the test for a space in the words
    removed)."""
    budget = Budget(Rule(2, 10.0, "10 seconds"), clock=Clock())
    budget.spend("addr:10.0.0.1")
    assert budget.describe("addr:10.0.0.1") == "1 of 2 turns left per 10 seconds"
    assert Budget(Rule(2, 3600.0, "hour"), clock=Clock()).describe("addr:10.0.0.1") == "2 of 2 turns left this hour"


def test_a_full_table_forgets_the_visitor_seen_longest_ago_not_the_newest() -> None:
    """At ``max_visitors`` the oldest visitor's count goes; the one who just spent stays counted (caught:
    ``popitem(last=False)`` made ``last=True``, which would hand the newest visitor a fresh budget each turn)."""
    budget = Budget(Rule(1, 3600.0, "hour"), clock=Clock(), max_visitors=2)
    for visitor in ("addr:10.0.0.1", "addr:10.0.0.2", "addr:10.0.0.3"):
        assert budget.spend(visitor) == Ok(0)
    assert isinstance(budget.spend("addr:10.0.0.3"), OverBudget)  # the newest is still at its limit
    assert isinstance(budget.spend("addr:10.0.0.2"), OverBudget)
    assert budget.spend("addr:10.0.0.1") == Ok(0)  # the oldest was forgotten


def test_a_starlette_request_without_a_login_is_keyed_by_its_address() -> None:
    """A starlette Request handed to ``Visitor.of`` has no ``username`` at all (caught:
    ``getattr(request, "username", None)`` without its default raises AttributeError)."""
    request = Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [],
                       "client": ("10.9.8.7", 51000)})
    assert Visitor.of(request).client == "addr:10.9.8.7"
    no_client = Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []})
    assert Visitor.of(no_client).client == "addr:unknown"


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """The host's clock set to UTC+5:30 for one test (a host in India), then back."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "IST-5:30")  # POSIX form: needs no time zone database
        time.tzset()
        assert time.localtime(RETRY).tm_gmtoff == 5.5 * 3600  # else the zone did not take and the test proves nothing
        yield
    time.tzset()


def test_the_sentence_says_utc_whatever_the_host_s_time_zone(far_from_utc: None) -> None:
    """The sentence promises a UTC time; a host far from UTC must not print its own (caught: ``tz=UTC`` made
    ``tz=None``: 21:12 in Kolkata)."""
    over = OverBudget(retry_at=RETRY, limit=20, words="hour", now=RETRY - 600)
    assert "chat again at 15:42 UTC (in 10 minutes)" in over.sentence()


@pytest.mark.parametrize(("wait", "clock", "minutes"), [
    (119.0, "15:42:00", "in 2 minutes"),  # under two minutes: the seconds count
    (120.0, "15:42", "in 2 minutes"),     # from two minutes on: hours and minutes
    (61.0, "15:42:00", "in 2 minutes"),   # minutes are rounded up: 61 s is "2 minutes"
    (60.0, "15:42:00", "in 1 minute"),
])
def test_the_clock_shows_seconds_under_two_minutes_and_minutes_round_up(wait: float, clock: str,
                                                                        minutes: str) -> None:
    """Caught: ``wait < 120`` made ``<= 120`` or ``< 121`` (seconds shown at two minutes), and ``// 60`` made
    ``// 61`` (61 s said as "1 minute")."""
    sentence = OverBudget(retry_at=RETRY, limit=2, words="hour", now=RETRY - wait).sentence()
    assert sentence.endswith(f"chat again at {clock} UTC ({minutes})."), sentence
