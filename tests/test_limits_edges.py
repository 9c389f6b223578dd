"""The input limits at their edges (phi4_bridge/messages.py, the limits of a turn and of a caller's history), as
the mutation check (tests/README.md) asks: each limit lets its own figure through and refuses one more, with the
sentence the user reads. Pure functions on the default ``Limits``; each test names the break it catches."""

from __future__ import annotations

import pytest

from phi4_bridge.config import Limits
from phi4_bridge.errors import InputRejected
from phi4_bridge.messages import check_history, check_prompt

LIMITS = Limits()


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def history_of(count: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(count)]


def test_the_default_limits_are_the_documented_figures() -> None:
    """docs/security.md's figures: 400 messages, 200,000 characters, 32 files of history; 20,000 characters a
    message (caught: any default changed)."""
    assert (LIMITS.max_history_messages, LIMITS.max_history_chars, LIMITS.max_history_files,
            LIMITS.max_prompt_chars) == (400, 200_000, 32, 20_000)


def test_a_history_of_400_messages_passes_and_401_is_refused_with_the_figures() -> None:
    """Caught: ``len(history) > limit`` made ``>=`` (400 refused), the limit in the sentence, the reason."""
    assert len(check_history(history_of(400), LIMITS)) == 200
    with pytest.raises(InputRejected) as refused:
        check_history(history_of(401), LIMITS)
    assert str(refused.value) == "The history has 401 messages; the limit is 400. Start a new conversation."
    assert refused.value.reason == "history_too_long"


def test_a_history_of_200_000_characters_passes_and_one_more_is_refused() -> None:
    """Caught: ``chars > limit`` made ``>=``, the sum counted wrong, the figures in the sentence."""
    full = [user("x" * 100_000), {"role": "assistant", "content": "y" * 100_000}]
    assert check_history(full, LIMITS)[0].reply == "y" * 100_000
    with pytest.raises(InputRejected) as refused:
        check_history([*full, user("z")], LIMITS)
    assert str(refused.value) == ("The history is 200,001 characters; the limit is 200,000. "
                                  "Start a new conversation.")
    assert refused.value.reason == "history_too_long"


def files_message(first: int, count: int) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "file", "file": {"path": f"/tmp/f{i}.png"}}
                                        for i in range(first, first + count)]}


def test_a_history_with_32_files_passes_and_33_is_refused_counting_each_file_once() -> None:
    """Caught: ``len(files) > limit`` made ``>=``; the same file sent twice counted twice (it is one set)."""
    again = files_message(0, 32)
    turns = check_history([files_message(0, 32), user("look"), again], LIMITS)
    assert len(turns[0].files) == 32
    with pytest.raises(InputRejected) as refused:
        check_history([files_message(0, 33)], LIMITS)
    assert str(refused.value) == "The history carries 33 files; the limit is 32. Start a new conversation."
    assert refused.value.reason == "too_many_files"


def test_a_message_of_20_000_characters_passes_and_one_more_is_refused() -> None:
    """Caught: ``len(prompt) > limit`` made ``>=``, the figures in the sentence."""
    check_prompt("x" * 20_000, False, LIMITS)
    with pytest.raises(InputRejected) as refused:
        check_prompt("x" * 20_001, False, LIMITS)
    assert str(refused.value) == "The message is 20,001 characters; the limit is 20,000."
    assert refused.value.reason == "too_long"


def refusal(check: object) -> InputRejected:
    with pytest.raises(InputRejected) as refused:
        check()  # type: ignore[operator]
    return refused.value


def test_an_empty_message_is_refused_unless_it_carries_a_file() -> None:
    """Caught: the sentence or its reason changed (``reason`` is the /v1 error's ``code``), ``not has_files``
    made ``has_files`` (a picture sent with no words refused)."""
    refused = refusal(lambda: check_prompt(" \n ", False, LIMITS))
    assert (str(refused), refused.reason) == ("Write a message or attach a file first.", "empty")
    check_prompt("", True, LIMITS)


@pytest.mark.parametrize("history", ["hello", b"hello", {"role": "user", "content": "hi"}, 5])
def test_a_history_that_is_not_a_list_of_messages_is_refused_as_such(history: object) -> None:
    refused = refusal(lambda: check_history(history, LIMITS))  # type: ignore[arg-type]
    assert (str(refused), refused.reason) == ("The history must be a list of chat messages.", "bad_history")


@pytest.mark.parametrize("bad", ["a\x07b", "a\x00b", "\x1b[31mred", "right\u202eto left", "zero\u200bwidth",
                                 "\ufeffbom"])
def test_control_and_hidden_characters_are_refused_in_a_message_and_in_a_history(bad: str) -> None:
    """Caught: either sentence or reason changed."""
    refused = refusal(lambda: check_prompt(bad, False, LIMITS))
    assert (str(refused), refused.reason) == ("The message contains control characters; remove them and send again.",
                                              "control_characters")
    refused = refusal(lambda: check_history([user("fine"), {"role": "assistant", "content": bad}], LIMITS))
    assert (str(refused), refused.reason) == ("The history contains control characters; remove them and send again.",
                                              "control_characters")


def test_new_lines_tabs_returns_and_joiners_are_text_not_control_characters() -> None:
    """Caught: the ``"\\n\\t\\r"`` exception dropped (every multi-line message refused)."""
    text = "line one\nline\ttwo\r\nfamily: \U0001f468\u200d\U0001f469\u200d\U0001f467"
    check_prompt(text, False, LIMITS)
    assert check_history([user(text)], LIMITS)[0].text == text


@pytest.mark.parametrize("half", ["\ud800", "\udbff", "\udc00", "\udfff"])
def test_either_half_of_a_surrogate_pair_is_named_a_lone_surrogate(half: str) -> None:
    """Both ends of the range (caught: ``<= "\\udfff"`` made ``<``), in a message and in a history, with the
    reason that says what is wrong."""
    refused = refusal(lambda: check_prompt(f"a{half}b", False, LIMITS))
    assert str(refused).startswith("The message contains a lone surrogate (half of a UTF-16 pair")
    assert refused.reason == "control_characters"
    refused = refusal(lambda: check_history([user(f"a{half}b")], LIMITS))
    assert str(refused).startswith("The history contains a lone surrogate (half of a UTF-16 pair")
    assert refused.reason == "control_characters"
