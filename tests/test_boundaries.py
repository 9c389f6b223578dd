"""The limits docs/ promises, at their edges: the last value allowed passes and the first one past it is refused.

Each test here was checked by breaking the code it guards (``>`` made ``>=``, a cap raised, a check removed, a
timeout made seven times longer) and seeing it fail. Through the real app where the limit is the app's; the pure
checks directly, where a whole app would add nothing but time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_server import start_app
from gradio_client import Client
from gradio_client.exceptions import AppError

from mirror.qa.handlers import uploaded_reader
from mirror.settings import AppSettings
from phi4_bridge.config import Limits
from phi4_bridge.errors import InputRejected, UploadRejected
from phi4_bridge.media import MB, inspect_file
from phi4_bridge.messages import check_history
from phi4_standin.launcher import reset, stats
from phi4_standin.process import ServerProcess, free_port

LIMITS = Limits()
WAV_HEADER = b"RIFF\xff\xff\xff\x7fWAVEfmt "  # enough of a WAV's head for the sniffer


def conversation(messages: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(messages)]


def with_files(count: int, folder: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(count):
        path = folder / f"f{i}.png"
        path.write_bytes(b"x")
        out.append({"role": "user", "content": {"path": str(path)}})
    return out


# ---- the history a caller may send -------------------------------------------------------------------------

def test_a_history_of_400_messages_is_taken_and_401_is_refused() -> None:
    assert len(check_history(conversation(400), LIMITS)) == 200
    with pytest.raises(InputRejected, match="The history has 401 messages; the limit is 400"):
        check_history(conversation(401), LIMITS)


def test_a_history_of_200000_characters_is_taken_and_one_more_is_refused() -> None:
    history = [{"role": "user", "content": "x" * 100_000}, {"role": "assistant", "content": "y" * 100_000}]
    assert len(check_history(history, LIMITS)) == 1
    history[1]["content"] += "y"
    with pytest.raises(InputRejected, match="200,001 characters; the limit is 200,000"):
        check_history(history, LIMITS)


def test_a_history_with_32_files_is_taken_and_33_is_refused(tmp_path: Path) -> None:
    assert check_history(with_files(32, tmp_path), LIMITS)
    with pytest.raises(InputRejected, match="carries 33 files; the limit is 32"):
        check_history(with_files(33, tmp_path), LIMITS)


# ---- the size of a file ------------------------------------------------------------------------------------

def test_an_audio_file_of_25_mb_is_taken_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    audio = tmp_path / "clip.wav"
    audio.write_bytes(WAV_HEADER + b"\0" * (25 * MB - len(WAV_HEADER)))
    assert inspect_file(audio, LIMITS).size == 25 * MB
    with open(audio, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(UploadRejected, match=r"clip.wav: 25.0 MB is over the 25 MB limit"):
        inspect_file(audio, LIMITS)


# ---- what the QA tab may read ------------------------------------------------------------------------------

def test_the_qa_reader_reads_inside_its_folders_only(tmp_path: Path) -> None:
    inside, outside = tmp_path / "uploads", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (inside / "ok.png").write_bytes(b"mine")
    (outside / "secret.txt").write_bytes(b"not yours")
    (inside / "link.png").symlink_to(outside / "secret.txt")
    read = uploaded_reader([inside])
    assert read(str(inside / "ok.png")) == b"mine"
    assert read(str(outside / "secret.txt")) is None
    assert read(str(inside / ".." / "elsewhere" / "secret.txt")) is None
    assert read(str(inside / "link.png")) is None  # a link out of the folder is outside it
    assert read(str(inside / "missing.png")) is None


# ---- through the real app ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(standin: ServerProcess) -> Iterator[ServerProcess]:
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback") as server:
        yield server


def upload(app: ServerProcess, size: int) -> int:
    body = b"\0" * size
    answer = httpx.post(f"{app.url}/gradio_api/upload", files={"files": ("big.wav", body)}, timeout=60)
    return answer.status_code


def test_the_app_takes_an_upload_of_25_mb_and_refuses_one_byte_more(app: ServerProcess) -> None:
    assert AppSettings().max_upload_bytes == 25 * MB
    assert upload(app, 25 * MB) == 200
    assert upload(app, 25 * MB + 1) == 413


def test_a_turn_refused_before_it_reaches_the_space_is_given_back_to_the_budget(standin) -> None:
    """With 2 turns an hour: three turns refused by the bridge (a history over the limit) cost nothing, so two
    turns still go through, and only the third is over the budget. An app of its own: it spends this address's
    turns, and uploads ask the budget too (the upload test must not come after it on the same app)."""
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback",
                   "--visitor-turns", "2/hour") as app:
        spend_after_refusals(app, standin)


def spend_after_refusals(app: ServerProcess, standin: ServerProcess) -> None:
    reset(standin.url)
    client = Client(app.url, verbose=False)
    for _ in range(3):
        with pytest.raises(AppError, match="The history has 401 messages"):
            client.predict({"text": "refused", "files": []}, conversation(401), api_name="/chat")
    assert stats(standin.url)["calls"] == 0
    for text in ("one", "two"):
        reply = client.predict({"text": text, "files": []}, [], api_name="/chat")
        assert reply.startswith(f'You said: "{text}".'), reply
    with pytest.raises(AppError, match="You have used your 2 turns per hour on this app"):
        client.predict({"text": "three", "files": []}, [], api_name="/chat")


# ---- the start-up probe of the Space -----------------------------------------------------------------------

class SilentServer:
    """Accepts connections and never answers; records how long each client stayed before giving up."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[float] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        started = time.monotonic()
        conn.settimeout(120)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        self.held.append(time.monotonic() - started)
        conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def test_the_start_up_probe_of_a_silent_space_gives_up_within_twice_its_5_s(tmp_path: Path) -> None:
    """docs/app.md: the Space's ``/config`` is probed for 5 s at start. A Space that accepts and never answers is left
    within twice that, and the app comes up on the stand-in."""
    silent = SilentServer()
    closed_port = free_port()  # nothing listens: the Hub cannot say, so the app probes the Space itself
    try:
        with start_app("--space-url", f"http://127.0.0.1:{silent.port}", "--hub-url",
                       f"http://127.0.0.1:{closed_port}", timeout=120) as app:
            deadline = time.monotonic() + 60
            while not silent.held and time.monotonic() < deadline:
                time.sleep(0.1)
            assert silent.held, "the app never gave up on a Space that does not answer"
            assert silent.held[0] <= 2 * 5.0, f"the probe waited {silent.held[0]:.1f} s for a 5 s promise"
            assert "stand-in" in app.log_text()
    finally:
        silent.close()
