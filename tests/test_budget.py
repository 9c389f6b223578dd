"""Issue 14, the host's quota: the turn budget per visitor (mirror/visitors/budget.py), the usage store
(mirror/visitors/usage.py), and both through the real app with gradio_client (logins, --admin, the /chat API, the
host-only /usage route).

Pure logic runs on an explicit clock (no waiting an hour); the app runs a short period (``2/15s``)."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from app_server import start_app
from gradio_client import Client
from gradio_client.exceptions import AppError

from mirror.settings import parse_settings
from mirror.visitors.budget import Budget, Ok, OverBudget, Rule, parse_rule
from mirror.visitors.identity import Visitor
from mirror.visitors.usage import SCHEMA_VERSION, UsageStore
from phi4_standin.process import ServerProcess


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---- the rule -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "rule"), [
    ("20/hour", Rule(20, 3600.0, "hour")), ("5/minute", Rule(5, 60.0, "minute")), ("100/day", Rule(100, 86400.0,
                                                                                                 "day")),
    ("2/10s", Rule(2, 10.0, "10 seconds")), ("3 / 2 hours", Rule(3, 7200.0, "2 hours")), ("none", None),
])
def test_rules_are_read_as_written(text: str, rule: Rule | None) -> None:
    assert parse_rule(text) == rule


@pytest.mark.parametrize("text", ["20", "hour", "0/hour", "5/fortnight", "-1/day", "2/0s"])
def test_a_bad_rule_is_refused_with_the_shape_it_should_have(text: str) -> None:
    with pytest.raises(ValueError, match=r"N/PERIOD|must be positive"):
        parse_rule(text)


def test_defaults_share_on_means_30_an_hour_local_means_none() -> None:
    assert parse_settings(["--share"]).visitor_turns == Rule(30, 3600.0, "hour")
    assert parse_settings([]).visitor_turns is None
    assert parse_settings(["--share", "--visitor-turns", "none"]).visitor_turns is None
    assert parse_settings(["--visitor-turns", "4/minute", "--admin", "h", "--admin", "h"]).admins == ("h",)


# ---- the budget on an explicit clock --------------------------------------------------------------------------------

def test_a_visitor_at_the_limit_waits_for_the_oldest_turn_to_age_out_while_others_go_on() -> None:
    clock = Clock()
    budget = Budget(Rule(2, 600.0, "10 minutes"), clock=clock)
    assert budget.spend("user:alice") == Ok(1)
    clock.now += 100
    assert budget.spend("user:alice") == Ok(0)
    clock.now += 50
    over = budget.spend("user:alice")
    assert over == OverBudget(retry_at=1_800_000_600.0, limit=2, words="10 minutes", now=1_800_000_150.0)
    assert budget.check("user:alice") == over  # checking spends nothing either
    assert budget.spend("user:bob") == Ok(1)  # another visitor chats on
    assert budget.left("user:alice") == 0 and budget.left("user:bob") == 1
    clock.now = 1_800_000_600.0  # the first turn ages out: one turn back
    assert budget.check("user:alice") == Ok(1)
    assert budget.spend("user:alice") == Ok(0)
    assert isinstance(budget.spend("user:alice"), OverBudget)


def test_the_sentence_says_when_as_a_utc_clock_time_and_in_minutes() -> None:
    retry = datetime(2026, 11, 28, 15, 42, tzinfo=UTC).timestamp()
    over = OverBudget(retry_at=retry, limit=20, words="hour", now=retry - 17 * 60 + 30)
    assert over.sentence() == ("You have used your 20 turns per hour on this app; you can chat again at 15:42 UTC "
                               "(in 17 minutes).")
    soon = OverBudget(retry_at=retry + 5, limit=1, words="10 seconds", now=retry)
    assert soon.sentence() == ("You have used your 1 turn per 10 seconds on this app; you can chat again at 15:42:05 "
                               "UTC (in 1 minute).")


def test_admins_have_no_limit_and_a_refund_gives_the_turn_back() -> None:
    budget = Budget(Rule(1, 60.0, "minute"), admins=["host"], clock=Clock())
    assert [budget.spend("user:host") for _ in range(3)] == [Ok(None)] * 3
    assert budget.describe("user:host") == "no turn limit for the host"
    assert budget.describe("addr:10.0.0.1") == "1 of 1 turns left this minute"
    assert budget.spend("addr:host") == Ok(0)  # an address that happens to read "host" is no login
    budget.refund("addr:host")
    assert budget.spend("addr:host") == Ok(0)
    assert budget.describe("addr:host") == "0 of 1 turns left this minute"
    assert Budget(None).describe("user:anyone") == ""


def test_old_visitors_are_forgotten_and_the_table_is_bounded() -> None:
    clock = Clock()
    budget = Budget(Rule(1, 60.0, "minute"), clock=clock, max_visitors=3)
    for i in range(5):
        budget.spend(f"addr:10.0.0.{i}")
    assert len(budget._turns) == 3
    clock.now += 61
    budget.check("addr:10.0.0.4")
    assert "addr:10.0.0.4" not in budget._turns


def test_the_visitor_key_is_the_login_else_the_address() -> None:
    class Who:
        def __init__(self, username: str | None, host: str) -> None:
            self.username, self.client = username, type("C", (), {"host": host})()

    assert Visitor.of(Who("alice", "127.0.0.1")).client == "user:alice"
    assert Visitor.of(Who(None, "10.1.2.3")).client == "addr:10.1.2.3"
    assert Visitor.of(None).client == "local"


# ---- the usage store ------------------------------------------------------------------------------------------------

def test_usage_is_kept_across_a_reopen_with_wal_and_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "usage.sqlite3"
    store = UsageStore(path)
    store.record("user:alice", "chat", "ok", at=1000.0, answer_s=1.5, total_s=2.0)
    store.record("user:alice", "api", "error", at=1001.0, answer_s=None, total_s=0.5)
    store.record("addr:10.0.0.1", "chat", "ok", at=1002.0, answer_s=0.25, total_s=0.5)
    store.close()
    again = UsageStore(path, keep_s=10**12)
    rows = again.per_visitor(since=0)
    assert [(r.visitor, r.turns, r.failed, r.answer_s, r.gpu_s, r.last_at) for r in rows] == [
        ("user:alice", 2, 1, 1.5, None, 1001.0), ("addr:10.0.0.1", 1, 0, 0.25, None, 1002.0)]
    assert [r.visitor for r in again.per_visitor(since=1001.5)] == ["addr:10.0.0.1"]
    again.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_usage_rows_are_pruned_by_age_and_by_count(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "u.sqlite3", keep_s=100.0, max_rows=5)
    now = time.time()
    for i in range(8):  # at now-1000, -800, -600, -400, -200, now, +200, +400
        store.record(f"user:v{i}", "chat", "ok", at=now - 1000 + i * 200, total_s=1.0)
    assert store.rows() == 8
    assert store.prune(now) == 5  # older than 100 s: v0..v4
    assert sorted(r.visitor for r in store.per_visitor(since=0)) == ["user:v5", "user:v6", "user:v7"]
    for i in range(4):
        store.record(f"user:w{i}", "chat", "ok", at=now, total_s=1.0)
    assert store.prune(now) == 2  # 7 rows, at most 5: the two oldest go
    assert sorted(r.visitor for r in store.per_visitor(since=0)) == ["user:v7", "user:w0", "user:w1", "user:w2",
                                                                      "user:w3"]
    store.close()


# ---- through the app: logins, the budget, the admin, /usage -----------------------------------------------------

PERIOD_S = 10.0  # room for two turns on a loaded machine (a turn took up to 2 s there); the last step waits it out
LOGINS = {"alice": "alice-pass-1", "bob": "bob-pass-22", "carol": "carol-pass-4444", "host": "host-pass-333"}


@pytest.fixture(scope="module")
def budget_app(standin: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("usage") / "usage.sqlite3"
    logins = [a for user, password in LOGINS.items() for a in ("--auth", f"{user}:{password}")]
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback", *logins,
                   "--admin", "host", "--visitor-turns", f"2/{PERIOD_S:g}s", "--usage-db", str(db)) as server:
        server.usage_db = db
        yield server


def client_for(app: ServerProcess, user: str) -> Client:
    return Client(app.url, auth=(user, LOGINS[user]), verbose=False)


def chat(client: Client, text: str) -> str:
    return client.predict({"text": text, "files": []}, api_name="/chat")


OVER = re.compile(rf"^You have used your 2 turns per {PERIOD_S:g} seconds on this app; you can chat again at "
                  r"(\d\d):(\d\d):(\d\d) UTC \(in 1 minute\)\.$")


def test_a_visitor_over_budget_is_told_when_to_come_back_while_others_chat_on(budget_app: ServerProcess) -> None:
    alice, bob, host = (client_for(budget_app, u) for u in ("alice", "bob", "host"))
    assert chat(alice, "one").startswith('You said: "one".')
    assert chat(alice, "two").startswith('You said: "two".')
    refused_at = time.time()
    with pytest.raises(AppError) as refused:
        chat(alice, "three")
    match = OVER.match(str(refused.value))
    assert match, str(refused.value)
    assert chat(bob, "meanwhile").startswith('You said: "meanwhile".')  # another login chats on
    for i in range(3):  # the host's login has no limit
        assert chat(host, f"host {i}").startswith(f'You said: "host {i}".')
    # the clock time said: today (UTC) at that time, within the period from the refusal
    h, m, s = (int(g) for g in match.groups())
    said = datetime.now(UTC).replace(hour=h, minute=m, second=s, microsecond=0).timestamp()
    said += 86400 if said < refused_at - 3600 else 0  # said just after midnight (UTC)
    assert refused_at - 1 <= said <= refused_at + PERIOD_S + 1
    time.sleep(max(0.0, said + 1 - time.time()))  # the time the sentence gave (+1: it is shown to the second)
    assert "Earlier turns: 2" in chat(alice, "three again"), "the turn goes at the time the sentence said"


def test_only_the_host_sees_usage_and_an_api_client_of_another_login_gets_nothing(budget_app: ServerProcess) -> None:
    alice, carol, host = (client_for(budget_app, u) for u in ("alice", "carol", "host"))
    assert chat(carol, "count me").startswith('You said: "count me".')
    assert chat(carol, "and me").startswith('You said: "and me".')
    for who in (alice, carol):
        assert who.predict(24, api_name="/usage") == "Only the host sees usage."
    shown = host.predict(24, api_name="/usage")
    lines = shown.splitlines()
    assert lines[0] == "| visitor | turns | failed | answering (s) | GPU-seconds | last turn (UTC) |"
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:5] for line in lines[2:]}
    turns, failed, answering, gpu = rows["user:carol"]
    assert (turns, failed, gpu) == ("2", "0", "not reported") and float(answering) > 0
    assert "**all**" in rows
    with sqlite3.connect(budget_app.usage_db) as raw:  # kept on disk, in the file given with --usage-db
        assert raw.execute("SELECT COUNT(*), MIN(source), MAX(source), MIN(outcome), MAX(outcome) FROM turns "
                           "WHERE visitor = 'user:carol'").fetchone() == (2, "api", "api", "ok", "ok")


def test_usage_is_kept_across_a_restart_of_the_app(standin: ServerProcess, tmp_path: Path) -> None:
    db = tmp_path / "usage.sqlite3"
    args = ("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback", "--usage-db", str(db))
    with start_app(*args) as first:  # no login, no share: the local user is the host and sees usage
        assert chat(Client(first.url, verbose=False), "before").startswith('You said: "before".')
    with start_app(*args) as second:
        shown = Client(second.url, verbose=False).predict(24, api_name="/usage")
    row = next(line for line in shown.splitlines() if line.startswith("| addr:127.0.0.1 |"))
    assert row.split(" | ")[1:3] == ["1", "0"], shown
