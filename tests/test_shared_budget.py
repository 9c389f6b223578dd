"""The turn budget shared by the replicas of a cluster (mirror/visitors/shared_budget.py): a visitor gets the host's
turns whichever replica answers, not that many on each.

First two budgets on one file, as two replica processes would hold them (and threads racing on both); then the
real thing: ``python -m mirror.cluster`` behind Debian's nginx, whose ``/v1`` goes round robin, and one API key.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cluster import RunningCluster

from mirror.visitors.budget import Ok, OverBudget, Rule
from mirror.visitors.shared_budget import SharedBudget
from phi4_standin.launcher import start_standin

ROOT = Path(__file__).resolve().parents[1]
RULE = Rule(2, 3600.0, "hour")
KEY = "sk-shared-budget-test-key"


def test_two_replicas_on_one_file_give_a_visitor_the_host_s_turns(tmp_path: Path) -> None:
    clock = [1000.0]
    one, two = (SharedBudget(RULE, tmp_path / "budget.sqlite3", admins=["host"], clock=lambda: clock[0])
                for _ in range(2))
    assert one.spend("addr:1.2.3.4") == Ok(1)
    assert two.spend("addr:1.2.3.4") == Ok(0)
    over = one.spend("addr:1.2.3.4")
    assert isinstance(over, OverBudget) and over.retry_at == 1000.0 + 3600.0
    assert two.left("addr:1.2.3.4") == 0 and two.left("addr:5.6.7.8") == 2  # another visitor is untouched
    two.refund("addr:1.2.3.4")  # refused before the Space saw it: given back, seen by the other replica too
    assert one.left("addr:1.2.3.4") == 1
    assert one.spend("user:host") == Ok(None)  # the host has no limit
    clock[0] += 3600.0  # the window slides: both turns age out
    assert two.left("addr:1.2.3.4") == 2


RACER = """
import sys, time
from mirror.visitors.budget import Ok, Rule
from mirror.visitors.shared_budget import SharedBudget
budget = SharedBudget(Rule(40, 3600.0, "hour"), sys.argv[1])
while time.time() < float(sys.argv[2]):  # all start together
    pass
print(sum(isinstance(budget.spend("user:eager"), Ok) for _ in range(30)))
"""


def test_racing_replica_processes_let_exactly_the_budget_through(tmp_path: Path) -> None:
    """Four processes (as four replicas) spend 30 turns each for one visitor at the same moment: 40 get through."""
    path = tmp_path / "race.sqlite3"
    SharedBudget(RULE, path)  # the file and its table, before the race
    at = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(path), str(at)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outs]
    assert sum(int(out) for out, _ in outs) == 40, outs


@pytest.fixture(scope="module")
def budget_cluster() -> Iterator[RunningCluster]:
    with start_standin(pace_ms=5, chunks=4) as standin:
        running = RunningCluster(standin, extra=("--visitor-turns", "2/hour", "--api-key", KEY))
        try:
            yield running
        finally:
            running.stop()


def ask(url: str) -> tuple[int, str | None, dict[str, object]]:
    body = json.dumps({"model": "phi-4-multimodal", "messages": [{"role": "user", "content": "hello"}]}).encode()
    request = urllib.request.Request(url + "/v1/chat/completions", data=body, method="POST",
                                     headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - loopback
            return resp.status, resp.headers.get("x-mirror-replica"), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("x-mirror-replica"), json.loads(err.read() or b"{}")


def test_one_v1_key_gets_200_200_429_whichever_replica_answers(budget_cluster: RunningCluster) -> None:
    answers = [ask(budget_cluster.url) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 429, 429], answers
    assert {replica for _, replica, _ in answers} == {"r0", "r1"}, answers  # both replicas answered
    error = answers[2][2]["error"]
    assert isinstance(error, dict) and "2 turns" in str(error.get("message")), error
