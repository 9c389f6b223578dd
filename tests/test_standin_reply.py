"""The stand-in's reply sentences about the whole history (``Seen:``) and the settings (``Settings:``), and the
Gradio-5-shaped chatbot's handling of list contents; pure, no server. Expected texts are written out."""

from __future__ import annotations

from pathlib import Path

from media_factory import png as png_file
from media_factory import wav as make_wav

from phi4_standin import reply
from phi4_standin.chat import Gradio5Chatbot
from phi4_standin.official import read_turn


def _history(png: str, wav: str) -> list[dict]:
    return [
        {"role": "user", "content": {"file": {"path": png}}},
        {"role": "user", "content": "What is in this picture?"},
        {"role": "assistant", "content": "A red square."},
        {"role": "user", "content": {"file": {"path": wav}}},
        {"role": "user", "content": "  And   this sound, please? "},
    ]


def test_seen_names_every_turn_in_order(tmp_path: Path) -> None:
    png = str(png_file(tmp_path / "p.png"))
    wav = str(make_wav(tmp_path / "w.wav", 2.5))
    history = _history(png, wav)
    current = reply.parse_turn(history)
    turn = reply.TurnInput(current.prompt, current.files, current.earlier_turns, seen=reply.seen_in_history(history))
    assert reply.build_reply(turn) == (
        'You said: "  And   this sound, please? ". Audio 1: 2.5 s. Earlier turns: 1. '
        'Seen: turn 1 image PNG 37x23; turn 1 text "What is in"; turn 2 audio 2.5 s; turn 2 text "And this sound,".'
    )


def test_a_lost_or_moved_earlier_file_shows(tmp_path: Path) -> None:
    png = str(png_file(tmp_path / "p.png"))
    wav = str(make_wav(tmp_path / "w.wav", 2.5))
    lost = _history(png, wav)[1:]
    moved = _history(png, wav)
    moved.insert(3, moved.pop(0))  # the image now sits in turn 2, after the audio

    def seen_sentence(history: list[dict]) -> str:
        text = reply.build_reply(reply.TurnInput("x", seen=reply.seen_in_history(history)))
        return text[text.index("Seen: ") :]

    assert seen_sentence(lost) == ('Seen: turn 1 text "What is in"; turn 2 audio 2.5 s; turn 2 text "And this sound,".')
    assert seen_sentence(moved) == (
        'Seen: turn 1 text "What is in"; turn 2 audio 2.5 s; turn 2 image PNG 37x23; turn 2 text "And this sound,".'
    )
    assert seen_sentence([]) == "Seen: nothing."


def test_settings_sentence_and_extra_files(tmp_path: Path) -> None:
    png = str(png_file(tmp_path / "p.png", 8, 9))
    extra = [{"role": "user", "content": {"file": {"path": png}}}]
    seen = reply.seen_in_history([{"role": "user", "content": "hi"}], extra)
    assert seen == (reply.SeenItem(1, "text", "hi"), reply.SeenItem(1, "file", png))
    settings = (("top_p", 0.95), ("top_k", 50.0), ("temperature", 0.2), ("max_new_tokens", 512.0))
    text = reply.build_reply(reply.TurnInput("hi", seen=(), settings=settings))
    assert (
        text == 'You said: "hi". Earlier turns: 0. Seen: nothing. Settings: top_p=0.95, top_k=50, temperature=0.2, '
        "max_new_tokens=512."
    )


def test_official_reads_current_files_from_the_state_only(tmp_path: Path) -> None:
    png = str(png_file(tmp_path / "p.png"))
    wav = str(make_wav(tmp_path / "w.wav", 1.0))
    history = [
        {"role": "user", "content": {"file": {"path": png}}, "metadata": {"title": "image"}},
        {"role": "user", "content": "first", "metadata": None},
        {"role": "assistant", "content": "ok", "metadata": None},
        {"role": "user", "content": {"file": {"path": wav}}, "metadata": {"title": "audio"}},
        {"role": "user", "content": "second", "metadata": {}},
    ]
    with_state = read_turn(history, [{"kind": "audio", "path": wav}], ())
    without_state = read_turn(history, None, ())
    assert with_state.files == (wav,) and with_state.earlier_turns == 1 and with_state.prompt == "second"
    assert [(i.turn, i.kind) for i in with_state.seen or ()] == [(1, "file"), (1, "text"), (2, "file"), (2, "text")]
    assert without_state.files == ()
    assert [(i.turn, i.kind) for i in without_state.seen or ()] == [(1, "file"), (1, "text"), (2, "text")]


def test_gradio5_chatbot_splits_list_contents() -> None:
    """gradio 6's ChatInterface builds ``[{"path": p}, "text"]``; on the wire that is two gradio 5 messages."""
    chatbot = Gradio5Chatbot()
    out = chatbot.postprocess(
        [
            {"role": "user", "content": [{"path": "/x/a.png"}, "look"]},
            {"role": "user", "content": ("/x/b.wav",), "metadata": {"title": "audio"}},
            {"role": "assistant", "content": "fine"},
        ]
    )
    assert out == [
        {
            "role": "user",
            "metadata": None,
            "content": {
                "file": {
                    "path": "/x/a.png",
                    "url": None,
                    "size": None,
                    "orig_name": None,
                    "mime_type": "image/png",
                    "is_stream": False,
                    "meta": {"_type": "gradio.FileData"},
                },
                "alt_text": None,
            },
            "options": None,
        },
        {"role": "user", "metadata": None, "content": "look", "options": None},
        {
            "role": "user",
            "metadata": {"title": "audio"},
            "content": {
                "file": {
                    "path": "/x/b.wav",
                    "url": None,
                    "size": None,
                    "orig_name": None,
                    "mime_type": "audio/wav",
                    "is_stream": False,
                    "meta": {"_type": "gradio.FileData"},
                },
                "alt_text": None,
            },
            "options": None,
        },
        {"role": "assistant", "metadata": None, "content": "fine", "options": None},
    ]
