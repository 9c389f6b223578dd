"""The door's bookkeeping at its edges (mirror/door/guard.py), as the mutation check (tests/README.md) asks: the body
caps in the figures the refusals print, session ids at 1 and 64 characters, a /chat message at 8 files and 20,000
characters, the login lockout and its window, which streams count as open, and the tables' bounds. Pure functions
and small classes called directly, on the app's real default settings; each test names the break it catches."""

from __future__ import annotations

import pytest
from guard_clock import Clock

from mirror.door.guard import (
    Guard,
    LoginThrottle,
    StreamOpens,
    address_of,
    event_body_limit,
    release,
    upload_request_limit,
    valid_session_hash,
)
from mirror.settings import parse_settings
from mirror.visitors.budget import Budget, Rule
from phi4_bridge.config import Limits

MB = 1024 * 1024  # the unit of every figure the app prints ("25 MB" is 25 * 1024 * 1024 bytes)


def test_the_body_caps_are_the_figures_the_refusals_print() -> None:
    """docs/security.md: an event body of at most 4.3 MB (a history within its limits), an upload request of at
    most 81 MB (8 files of 10 MB and 1 MB of form). Caught: any term of either sum changed."""
    limits = Limits()
    assert event_body_limit(limits) == 12 * 220_000 + 4096 * 440 + 64 * 1024 == 4_507_776
    assert f"{event_body_limit(limits) / MB:.1f} MB" == "4.3 MB"
    assert upload_request_limit(limits) == 81 * MB


@pytest.mark.parametrize(("value", "valid"), [
    ("a", True), ("A" * 64, True), ("abc_DEF-123", True), ("", False), ("a" * 65, False), ("a b", False),
    ("a/b", False), ("é", False), (None, False), (12, False),
])
def test_a_session_id_is_1_to_64_letters_digits_underscores_or_dashes(value: object, valid: bool) -> None:
    """Caught: the length bounds or the character class widened, a non-string let through."""
    assert valid_session_hash(value) is valid


def test_release_counts_down_and_forgets_a_client_with_nothing_left() -> None:
    """The table holds only clients with something running (caught: ``left > 0`` made ``>= 0``, the key kept)."""
    counts = {"10.0.0.1": 2}
    release(counts, "10.0.0.1")
    assert counts == {"10.0.0.1": 1}
    release(counts, "10.0.0.1")
    assert counts == {}
    release(counts, "10.0.0.2")  # a release of a client never counted is no error
    assert counts == {}


def test_a_client_is_its_address_or_unknown() -> None:
    assert address_of({"client": ("10.0.0.7", 5000)}) == "10.0.0.7"
    assert address_of({"client": None}) == "unknown"
    assert address_of({}) == "unknown"


def test_a_stream_opened_twice_stays_open_until_closed_twice_and_counts_as_seen_since(clock: Clock) -> None:
    """Caught: the open count or ``left > 0`` changed (a second tab's stream closing would drop the first's
    turn), or ``seen >= since`` made ``>`` (a stream opened in the same instant as the turn not counted)."""
    streams = StreamOpens()
    streams.opened("s1")
    streams.opened("s1")
    streams.closed("s1")
    assert streams.is_open("s1")
    streams.closed("s1")
    assert not streams.is_open("s1")  # closed now, and no since given
    assert streams.is_open("s1", since=clock.now)  # seen at that very instant
    assert not streams.is_open("s1", since=clock.now + 0.001)
    assert not streams.is_open("never")
    assert not streams.is_open("never", since=0.0)


def test_the_stream_table_forgets_the_stream_seen_longest_ago(clock: Clock) -> None:
    """Bounded at ``max_items`` (caught: the oldest kept and the newest dropped, or the bound off by one)."""
    streams = StreamOpens(max_items=2)
    for key in ("a", "b", "c"):
        streams.opened(key)
        streams.closed(key)
        clock.now += 1
    assert [streams.is_open(key, since=0.0) for key in ("a", "b", "c")] == [False, True, True]


def test_five_failed_logins_within_the_window_lock_the_address_out_for_its_lockout(clock: Clock) -> None:
    """The defaults (5 failures in 60 s lock for 30 s). Caught: ``>= failures`` made ``>`` (a sixth try
    allowed), the window or the lockout changed, a success not clearing the count, another address locked."""
    settings = parse_settings([])
    throttle = LoginThrottle(settings.login_failures, settings.login_window_s, settings.login_lockout_s)
    for _ in range(4):
        throttle.record("10.0.0.1", ok=False)
    assert throttle.locked_for("10.0.0.1") == 0.0
    throttle.record("10.0.0.1", ok=True)  # a success wipes the count
    for _ in range(4):
        throttle.record("10.0.0.1", ok=False)
    assert throttle.locked_for("10.0.0.1") == 0.0
    throttle.record("10.0.0.1", ok=False)
    assert throttle.locked_for("10.0.0.1") == 30.0
    assert throttle.locked_for("10.0.0.2") == 0.0
    clock.now += 29.5
    assert throttle.locked_for("10.0.0.1") == 0.5
    clock.now += 0.5
    assert throttle.locked_for("10.0.0.1") == 0.0  # the lockout is over at 30 s, not after


def test_failures_older_than_the_window_do_not_count(clock: Clock) -> None:
    """Caught: ``now - t < window`` made ``<=`` or the old failures kept."""
    throttle = LoginThrottle(failures=2, window_s=60.0, lockout_s=30.0)
    throttle.record("10.0.0.1", ok=False)
    clock.now += 60.0
    throttle.record("10.0.0.1", ok=False)
    assert throttle.locked_for("10.0.0.1") == 0.0  # the first failure is exactly a window old: gone
    clock.now += 59.9
    throttle.record("10.0.0.1", ok=False)
    assert throttle.locked_for("10.0.0.1") == 30.0


def test_the_failure_table_is_bounded_forgetting_the_oldest_address(clock: Clock) -> None:
    throttle = LoginThrottle(failures=2, window_s=60.0, lockout_s=30.0, max_clients=2)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        throttle.record(address, ok=False)
    throttle.record("10.0.0.1", ok=False)  # its first failure was forgotten: one of two
    throttle.record("10.0.0.3", ok=False)  # still counted: locked
    assert (throttle.locked_for("10.0.0.1"), throttle.locked_for("10.0.0.3")) == (0.0, 30.0)


@pytest.fixture
def guard() -> Guard:
    return Guard(parse_settings([]))


def test_a_chat_message_of_8_files_and_20_000_characters_passes_and_one_more_is_refused(guard: Guard) -> None:
    """docs/security.md's figures, checked on the raw JSON before gradio reads any file. Caught: ``>`` made
    ``>=`` in either check, the sentences' figures."""
    files = [{"path": f"/tmp/f{i}.png"} for i in range(8)]
    assert guard.check_message({"text": "x" * 20_000, "files": files}) is None
    assert guard.check_message({"text": "hi", "files": [*files, {"path": "/tmp/9.png"}]}) == \
        "9 files is more than the 8 a turn can carry."
    assert guard.check_message({"text": "x" * 20_001, "files": []}) == \
        "The message is 20,001 characters; the limit is 20,000."
    assert guard.check_message({"files": [{"path": "/tmp/x"}] * 10_000}) == \
        "10,000 files is more than the 8 a turn can carry."


@pytest.mark.parametrize(("message", "sentence"), [
    (None, None),
    ({}, None),
    ({"text": None, "files": None}, None),
    ("hello", 'The message must be an object like {"text": "...", "files": [...]}.'),
    ({"text": 5}, 'The message\'s "text" must be a string.'),
    ({"text": "hi", "files": "a.png"}, 'The message\'s "files" must be a list.'),
])
def test_a_chat_message_of_the_wrong_shape_is_named_for_what_is_wrong(guard: Guard, message: object,
                                                                      sentence: str | None) -> None:
    assert guard.check_message(message) == sentence


def test_over_budget_gives_the_budget_s_sentence_for_the_request_s_address(guard: Guard) -> None:
    """The upload refusal's sentence (caught: the verdict ignored, or another visitor's key used)."""
    assert guard.over_budget({"client": ("10.0.0.5", 1)}) is None  # no budget at all
    guard.budget = Budget(Rule(1, 3600.0, "hour"))
    assert guard.over_budget({"client": ("10.0.0.5", 1)}) is None
    guard.budget.spend("addr:10.0.0.5")
    sentence = guard.over_budget({"client": ("10.0.0.5", 1)})
    assert sentence is not None and sentence.startswith("You have used your 1 turn per hour on this app;")
    assert guard.over_budget({"client": ("10.0.0.6", 1)}) is None


def test_a_login_from_an_address_with_no_failures_is_no_error_and_a_lockout_starts_the_count_afresh(
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """After the 30 s lockout an address has its five tries again, not one (caught: the failures not cleared
    at the lockout: the next single failure locked it again); a success from an address never seen is no error
    (caught: ``pop(client, None)`` without its default: KeyError); the log line names the address and the figures
    (caught: its words or arguments changed)."""
    throttle = LoginThrottle(failures=5, window_s=60.0, lockout_s=30.0)
    throttle.record("10.0.0.9", ok=True)
    with caplog.at_level("WARNING", logger="mirror.door.guard"):
        for _ in range(5):
            throttle.record("10.0.0.1", ok=False)
    assert [r.getMessage() for r in caplog.records] == ["login: 5 failed logins from 10.0.0.1; locked out for 30 s"]
    clock.now += 30.0
    assert throttle.locked_for("10.0.0.1") == 0.0
    for _ in range(4):
        throttle.record("10.0.0.1", ok=False)  # within the first failures' 60 s window, yet a fresh count
    assert throttle.locked_for("10.0.0.1") == 0.0


def test_a_stream_closed_without_being_seen_open_is_not_open(clock: Clock) -> None:
    """A close the table never saw open (its open came before a restart of the count) must not leave the stream
    counted open, nor raise (caught: ``get(key, 1)`` made ``get(key, 2)``, ``None`` or no default; ``pop(key,
    None)`` without its default)."""
    streams = StreamOpens()
    streams.closed("s9")
    assert not streams.is_open("s9")
    assert streams.is_open("s9", since=clock.now)  # but it was seen just now
