"""The stand-in's layouts (classic, official, chatinterface), driven as gradio's own page drives a Space.

Against real stand-in subprocesses over loopback (no mocks). ``PageClient`` is a plain aiohttp client doing the
page's sequence: read ``/config``, find the dependency started by the multimodal textbox's ``submit``, run it
and every dependency chained after it (``trigger_after``, depth first, in index order), inputs built from
component values (``/config``'s ``props.value``, then every step's outputs), ``null`` for State inputs,
``/run/predict`` for ``queue: false`` steps and ``queue/join`` + SSE for queued ones, one session hash for the
whole conversation. It shares no code with the stand-in or the bridge. Expected replies are written out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from media_factory import png as png_file
from media_factory import wav as make_wav

from phi4_standin.launcher import reset, seen, set_fault, start_standin
from phi4_standin.process import ServerProcess

QUOTAS = ("--anon-quota-seconds", "3600", "--quota-seconds", "3600")
OFFICIAL_DEFAULTS = "Settings: top_p=0.95, top_k=50, temperature=0.8, repetition_penalty=1.05, max_new_tokens=512."
CHATINTERFACE_DEFAULTS = "Settings: temperature=0.8, max_new_tokens=512."
QUESTION = "What is in this picture?"


async def read_sse(resp: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async for line in resp.content:
        text = line.decode().rstrip("\r\n")
        if text.startswith("data:"):
            event = json.loads(text[len("data:") :])
            events.append(event)
            if event.get("msg") in ("process_completed", "close_stream"):
                break
    return events


class StepFailed(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class PageClient:
    """What gradio's page does for a textbox submit, with raw HTTP (see module docstring)."""

    def __init__(self, session: aiohttp.ClientSession, origin: str) -> None:
        self.s = session
        self.origin = origin
        self.session_hash = uuid.uuid4().hex[:11]
        self.components: dict[int, dict[str, Any]] = {}
        self.deps: list[dict[str, Any]] = []
        self.values: dict[int, Any] = {}
        self.events: list[dict[str, Any]] = []

    async def load(self) -> dict[str, Any]:
        async with self.s.get(f"{self.origin}/config") as resp:
            assert resp.status == 200
            config = await resp.json()
        self.components = {c["id"]: c for c in config["components"]}
        self.deps = config["dependencies"]
        self.values = {cid: c.get("props", {}).get("value") for cid, c in self.components.items()}
        return config

    def of_type(self, kind: str) -> list[int]:
        return [cid for cid, c in self.components.items() if c["type"] == kind]

    @property
    def textbox(self) -> int:
        (textbox,) = self.of_type("multimodaltextbox")
        return textbox

    def submit_dep(self) -> int:
        (dep,) = [d["id"] for d in self.deps if [self.textbox, "submit"] in d["targets"]]
        return dep

    def children(self, dep: int) -> list[int]:
        return [d["id"] for d in self.deps if d.get("trigger_after") == dep]

    def chain(self) -> list[int]:
        """The submit's dependency and all chained after it, depth first, in index order."""
        order: list[int] = []

        def walk(dep: int) -> None:
            order.append(dep)
            for child in self.children(dep):
                walk(child)

        walk(self.submit_dep())
        return order

    def slider(self, label: str) -> int:
        (cid,) = [cid for cid in self.of_type("slider") if self.components[cid]["props"].get("label") == label]
        return cid

    def inputs(self, dep: int) -> list[Any]:
        return [None if self.components[i]["type"] == "state" else self.values.get(i) for i in self.deps[dep]["inputs"]]

    def apply(self, dep: int, data: list[Any]) -> None:
        for cid, value in zip(self.deps[dep]["outputs"], data, strict=True):
            if self.components[cid]["type"] in ("state", "browserstate"):
                continue
            if isinstance(value, dict) and value.get("__type__") == "update":
                if "value" in value:
                    self.values[cid] = value["value"]
            else:
                self.values[cid] = value

    def body(self, dep: int, data: list[Any]) -> dict[str, Any]:
        return {
            "data": data,
            "event_data": None,
            "fn_index": dep,
            "trigger_id": self.textbox,
            "session_hash": self.session_hash,
        }

    async def predict(self, dep: int, data: list[Any]) -> list[Any]:
        async with self.s.post(f"{self.origin}/gradio_api/run/predict", json=self.body(dep, data)) as resp:
            answer = await resp.json(content_type=None)
            if resp.status != 200:
                raise StepFailed(resp.status, answer)
        return answer["data"]

    async def queued(self, dep: int, data: list[Any]) -> dict[str, Any]:
        async with self.s.post(f"{self.origin}/gradio_api/queue/join?__theme=light", json=self.body(dep, data)) as resp:
            assert resp.status == 200, await resp.text()
        url = f"{self.origin}/gradio_api/queue/data?session_hash={self.session_hash}"
        async with self.s.get(url, headers={"accept": "text/event-stream"}) as resp:
            assert resp.status == 200
            events = await read_sse(resp)
        self.events = events
        done = [e for e in events if e.get("msg") == "process_completed"]
        assert done, [e.get("msg") for e in events]
        return done[-1]

    async def run(self, dep: int, data: list[Any] | None = None) -> None:
        data = self.inputs(dep) if data is None else data
        if self.deps[dep]["queue"]:
            completed = await self.queued(dep, data)
            if not completed["success"]:
                raise StepFailed(200, completed["output"])
            self.apply(dep, completed["output"]["data"])
        else:
            self.apply(dep, await self.predict(dep, data))

    async def turn(self, text: str, files: list[dict[str, Any]] = ()) -> str:
        """One turn: the textbox value set as the page sets it, then the whole chain; the reply's text."""
        self.values[self.textbox] = {"text": text, "files": list(files)}
        for dep in self.chain():
            if self.deps[dep].get("backend_fn", True):
                await self.run(dep)
        return self.reply()

    def chatbot(self) -> int:
        """The chatbot the submit's chain writes (the API one, not the browser view)."""
        chain = self.chain()
        (cid,) = {o for d in chain for o in self.deps[d]["outputs"] if self.components[o]["type"] == "chatbot"}
        return cid

    def reply(self) -> str:
        history = self.values[self.chatbot()]
        assert history and history[-1]["role"] == "assistant", history
        return history[-1]["content"]

    async def upload(self, path: Path, mime: str) -> dict[str, Any]:
        data = path.read_bytes()  # noqa: ASYNC240 - tiny test file
        form = aiohttp.FormData()
        form.add_field("files", data, filename=path.name, content_type=mime)
        async with self.s.post(f"{self.origin}/gradio_api/upload?upload_id={self.session_hash}", data=form) as resp:
            assert resp.status == 200, await resp.text()
            (server_path,) = await resp.json()
        return {
            "path": server_path,
            "url": f"{self.origin}/gradio_api/file={server_path}",
            "orig_name": path.name,
            "size": len(data),
            "mime_type": mime,
            "meta": {"_type": "gradio.FileData"},
        }


@pytest.fixture(scope="module", params=["classic", "official", "chatinterface"])
def layout_standin(request: pytest.FixtureRequest) -> Iterator[tuple[str, ServerProcess]]:
    with start_standin(layout=request.param, pace_ms=5, chunks=8, extra_args=QUOTAS) as proc:
        yield request.param, proc


@pytest.fixture
def layout(layout_standin: tuple[str, ServerProcess]) -> tuple[str, ServerProcess]:
    reset(layout_standin[1].url)
    return layout_standin


# ---- every layout: /config, the page's sequence, a second turn, sliders -----------------------------------------
EXPECTED_CHAIN = {
    # dependency: (fn name as /config's api_name, queue, inputs, outputs, trigger_after)
    "classic": [
        (10, "add_message", False, [7, 8, 10], [7, 8], None),
        (11, "bot", True, [7, 9], [7], 10),
        (12, "lambda", False, [], [8], 11),
    ],
    "official": [
        (2, "check_messages", False, [13, 15, 17], [13, 15, 17, 18], None),
        (3, "bot", True, [13, 18, 4, 5, 6, 7, 8], [13], 2),
        (4, "lambda_1", False, [], [15], 3),
    ],
    "chatinterface": [
        (0, "_clear_and_save_textbox", False, [4], [4, 10], None),
        (1, "_append_message_to_history", False, [10, 3], [3], 0),
        (2, "_submit_fn", True, [10, 19, 5, 6], [11, 3], 1),
        (3, "lambda", False, [3], [19, 20], 2),
        (4, "lambda_1", True, [], [4], 3),
        (5, "_save_conversation", False, [9, 19, 8], [9, 8], 4),
        (16, "lambda_7", False, [], [4], 2),
        (14, "lambda_5", False, [], [4], 0),
    ],
}
EXPECTED_IDS = {  # textbox, API chatbot, States
    "classic": (8, 7, [10]),
    "official": (15, 13, [18]),
    "chatinterface": (4, 3, [9, 10, 11, 19, 20]),
}


async def test_config_has_the_chain(layout: tuple[str, ServerProcess]) -> None:
    name, standin = layout
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, standin.url)
        await client.load()
        async with s.get(f"{standin.url}/standin/config") as resp:
            assert (await resp.json())["layout"] == name
    textbox, chatbot, states = EXPECTED_IDS[name]
    assert client.textbox == textbox and client.chatbot() == chatbot
    assert sorted(client.of_type("state")) == states
    deps = {d["id"]: d for d in client.deps}
    for dep, api_name, queue, inputs, outputs, after in EXPECTED_CHAIN[name]:
        got = deps[dep]
        assert (got["api_name"], got["queue"], got["inputs"], got["outputs"], got.get("trigger_after")) == (
            api_name,
            queue,
            inputs,
            outputs,
            after,
        ), dep
    bot = {"classic": 11, "official": 3, "chatinterface": 2}[name]
    assert [d["id"] for d in client.deps if d.get("zerogpu")] == {
        "classic": [11],
        "official": [3],
        "chatinterface": [2, 6, 10, 24],
    }[name]
    assert deps[bot]["zerogpu"] is True
    assert client.chain()[0] == EXPECTED_CHAIN[name][0][0]
    assert sorted(client.chain()) == sorted(d[0] for d in EXPECTED_CHAIN[name])


def test_official_sliders_in_config(layout: tuple[str, ServerProcess]) -> None:
    name, standin = layout
    import urllib.request

    with urllib.request.urlopen(f"{standin.url}/config") as resp:
        config = json.loads(resp.read())
    sliders = [
        (
            c["id"],
            c["props"]["label"],
            c["props"]["minimum"],
            c["props"]["maximum"],
            c["props"]["step"],
            c["props"]["value"],
        )
        for c in config["components"]
        if c["type"] == "slider"
    ]
    assert (
        sliders
        == {
            "classic": [],
            "official": [
                (4, "Top-p", 0, 1, 0.01, 0.95),
                (5, "Top-k", 1, 100, 1, 50),
                (6, "Temperature", 0, 2, 0.05, 0.8),
                (7, "Repetition Penalty", 1, 2, 0.01, 1.05),
                (8, "Max New Tokens", 1, 4096, 1, 512),
            ],
            "chatinterface": [(5, "temperature", 0, 2, 0.05, 0.8), (6, "max_new_tokens", 1, 4096, 1, 512)],
        }[name]
    )


FIRST_REPLY = {
    "classic": 'You said: "What is in this picture?". Image 1: PNG, 37x23. Earlier turns: 0. '
    'Seen: turn 1 image PNG 37x23; turn 1 text "What is in".',
    "official": 'You said: "What is in this picture?". Image 1: PNG, 37x23. Earlier turns: 0. '
    'Seen: turn 1 image PNG 37x23; turn 1 text "What is in". ' + OFFICIAL_DEFAULTS,
    "chatinterface": 'You said: "What is in this picture?". Image 1: PNG, 37x23. Earlier turns: 0. '
    'Seen: turn 1 image PNG 37x23; turn 1 text "What is in". ' + CHATINTERFACE_DEFAULTS,
}
SECOND_REPLY = {
    "classic": 'You said: "And the audio?". Audio 1: 2.5 s. Earlier turns: 1. Seen: turn 1 image PNG 37x23; '
    'turn 1 text "What is in"; turn 2 audio 2.5 s; turn 2 text "And the audio?".',
    "official": 'You said: "And the audio?". Audio 1: 2.5 s. Earlier turns: 1. Seen: turn 1 image PNG 37x23; '
    'turn 1 text "What is in"; turn 2 audio 2.5 s; turn 2 text "And the audio?". ' + OFFICIAL_DEFAULTS,
    "chatinterface": 'You said: "And the audio?". Audio 1: 2.5 s. Earlier turns: 1. Seen: turn 1 image PNG 37x23; '
    'turn 1 text "What is in"; turn 2 audio 2.5 s; turn 2 text "And the audio?". ' + CHATINTERFACE_DEFAULTS,
}


async def test_page_sequence_two_turns(layout: tuple[str, ServerProcess], tmp_path: Path) -> None:
    name, standin = layout
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, standin.url)
        await client.load()
        image = await client.upload(png_file(tmp_path / "red.png"), "image/png")
        assert await client.turn(QUESTION, [image]) == FIRST_REPLY[name]
        assert client.values[client.textbox] in ({"text": "", "files": []}, None)
        audio = await client.upload(make_wav(tmp_path / "voice.wav", 2.5), "audio/wav")
        assert await client.turn("And the audio?", [audio]) == SECOND_REPLY[name]
        third = await client.turn("Third")
        history = client.values[client.chatbot()]
    assert third.startswith(
        'You said: "Third". Earlier turns: 2. Seen: turn 1 image PNG 37x23; turn 1 text "What is in";'
    )
    assert 'turn 2 text "And the audio?"; turn 3 text "Third".' in third
    # the history the Space returned, in the gradio 5 shape; files first in their turn
    contents = [m["content"] if isinstance(m["content"], str) else "<file>" for m in history]
    assert contents[:3] == ["<file>", QUESTION, FIRST_REPLY[name]]
    assert all(set(m) == {"role", "metadata", "content", "options"} for m in history)
    file_message = history[0]
    assert set(file_message["content"]) == {"file", "alt_text"}
    assert file_message["content"]["file"]["path"].endswith("/red.png")
    assert file_message["metadata"] == ({"title": "image"} if name == "official" else None)
    record = seen(standin.url, client.session_hash)
    assert record is not None and record["layout"] == name and record["prompt"] == "Third"
    assert [(i["turn"], i["kind"]) for i in record["seen"]] == [
        (1, "file"),
        (1, "text"),
        (2, "file"),
        (2, "text"),
        (3, "text"),
    ]


async def test_slider_values_reach_the_bot_step(layout: tuple[str, ServerProcess]) -> None:
    name, standin = layout
    if name == "classic":
        pytest.skip("the classic layout has no sliders")
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, standin.url)
        await client.load()
        client.values[client.slider({"official": "Temperature", "chatinterface": "temperature"}[name])] = 0.2
        client.values[client.slider({"official": "Max New Tokens", "chatinterface": "max_new_tokens"}[name])] = 64
        text = await client.turn("hello")
    expected = {
        "official": "Settings: top_p=0.95, top_k=50, temperature=0.2, repetition_penalty=1.05, max_new_tokens=64.",
        "chatinterface": "Settings: temperature=0.2, max_new_tokens=64.",
    }[name]
    assert text == f'You said: "hello". Earlier turns: 0. Seen: turn 1 text "hello". {expected}'
    record = seen(standin.url, client.session_hash)
    assert record is not None and record["settings"]["temperature"] == 0.2


async def test_quota_fault_applies_to_the_bot_step(layout: tuple[str, ServerProcess]) -> None:
    _, standin = layout
    set_fault(standin.url, "quota", times=1)
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, standin.url)
        await client.load()
        with pytest.raises(StepFailed) as failure:
            await client.turn("hello")
        assert failure.value.body["title"] == "ZeroGPU quota exceeded"
        assert failure.value.body["error"] == (
            "You have exceeded your GPU quota (1s requested vs. 0s left). "
            "Create a free account to get more usage quota."
        )
        await client.load()  # a fresh page, as after a reload
        assert (await client.turn("again")).startswith('You said: "again". Earlier turns: 0.')


# ---- official only --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def official() -> Iterator[ServerProcess]:
    with start_standin(layout="official", pace_ms=5, chunks=8, extra_args=QUOTAS) as proc:
        yield proc


async def test_official_skipping_the_user_step_loses_the_image(official: ServerProcess, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, official.url)
        await client.load()
        image = await client.upload(png_file(tmp_path / "red.png"), "image/png")
        history = [{"role": "user", "content": {"file": image}}, {"role": "user", "content": QUESTION}]
        completed = await client.queued(3, [history, None, 0.95, 50, 0.8, 1.05, 512])
    assert completed["success"] is True
    text = completed["output"]["data"][0][-1]["content"]
    assert text == f'You said: "{QUESTION}". Earlier turns: 0. Seen: turn 1 text "What is in". {OFFICIAL_DEFAULTS}'
    record = seen(official.url, client.session_hash)
    assert record is not None and record["files"] == [] and record["inputs"]["state"] is None


async def test_official_earlier_untitled_file_is_not_read(official: ServerProcess, tmp_path: Path) -> None:
    """An earlier turn's file counts only as the user step wrote it (titled); the current one only via the State."""
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, official.url)
        await client.load()
        image = await client.upload(png_file(tmp_path / "red.png"), "image/png")
        history = [
            {"role": "user", "content": {"file": image}},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": {"file": image}, "metadata": {"title": "image"}},
            {"role": "user", "content": "second question"},
        ]
        completed = await client.queued(3, [history, None, 0.95, 50, 0.8, 1.05, 512])
    text = completed["output"]["data"][0][-1]["content"]
    assert text == (
        'You said: "second question". Earlier turns: 1. Seen: turn 1 text "first question"; '
        f'turn 2 text "second question". {OFFICIAL_DEFAULTS}'
    )


async def test_official_slider_null_is_the_generic_failure(official: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, official.url)
        await client.load()
        await client.run(2, [[], {"text": "hi", "files": []}, None])
        history = client.values[13]
        completed = await client.queued(3, [history, None, None, 50, 0.8, 1.05, 512])
    assert completed["success"] is False
    assert completed["output"].get("error") is None


async def test_official_recorded_audio(official: ServerProcess, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, official.url)
        await client.load()
        client.values[17] = await client.upload(make_wav(tmp_path / "rec.wav", 1.5), "audio/wav")
        text = await client.turn("Listen")
        assert client.values[17] is None  # the user step clears the recording
        history = client.values[13]
    assert text.startswith(
        'You said: "Listen". Audio 1: 1.5 s. Earlier turns: 0. Seen: turn 1 audio 1.5 s; turn 1 text "Listen".'
    )
    assert history[0]["metadata"] == {"title": "audio"}


def _files(tmp_path: Path, *names: str) -> list[tuple[Path, str]]:
    out = []
    for name in names:
        path = tmp_path / name
        if name.endswith(".png"):
            out.append((png_file(path), "image/png"))
        elif name.startswith("long"):
            out.append((make_wav(path, 61.0, 4000), "audio/wav"))
        elif name.startswith("short"):
            out.append((make_wav(path, 0.05), "audio/wav"))
        elif name.endswith(".wav"):
            out.append((make_wav(path, 2.0), "audio/wav"))
        else:
            path.write_text("hello world!")
            out.append((path, "text/plain"))
    return out


@pytest.mark.parametrize(
    ("text", "names", "recorded", "error"),
    [
        ("", [], False, "Message is empty"),
        ("   ", [], False, "Message is empty"),
        ("two", ["a.png", "b.png"], False, "Please upload only one image file."),
        ("two", ["a.wav", "b.wav"], False, "Please upload only one audio file."),
        ("both", ["a.wav"], True, "Please upload only one audio file or record audio."),
        ("long", ["long.wav"], False, "Audio file too long. For efficiency we recommend to use audio < 60s"),
        ("short", ["short.wav"], False, "Audio file too short"),
        ("odd", ["notes.txt"], False, "Unsupported file type: notes.txt. It should be an image or audio file."),
    ],
)
async def test_official_user_step_errors(
    official: ServerProcess, tmp_path: Path, text: str, names: list[str], recorded: bool, error: str
) -> None:
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, official.url)
        await client.load()
        files = [await client.upload(path, mime) for path, mime in _files(tmp_path, *names)]
        audio = await client.upload(make_wav(tmp_path / "rec.wav", 1.0), "audio/wav") if recorded else None
        async with s.post(
            f"{official.url}/gradio_api/run/predict", json=client.body(2, [[], {"text": text, "files": files}, audio])
        ) as resp:
            assert resp.status == 500
            body = await resp.json()
    assert body == {"error": error, "title": "Error", "duration": 10, "visible": True}


async def test_official_queued_step_refuses_run_predict(official: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, official.url)
        await client.load()
        async with s.post(
            f"{official.url}/gradio_api/run/predict", json=client.body(3, [[], None, 0.95, 50, 0.8, 1.05, 512])
        ) as resp:
            assert resp.status == 404
            assert await resp.json() == {
                "detail": "This API endpoint does not accept direct HTTP POST requests. "
                "Please join the queue to use this API."
            }


async def test_official_user_step_wire_shape(official: ServerProcess, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as s:
        client = PageClient(s, official.url)
        await client.load()
        image = await client.upload(png_file(tmp_path / "red.png"), "image/png")
        data = await client.predict(2, [[], {"text": QUESTION, "files": [image]}, None])
    history, textbox, audio, state = data
    assert audio is None and state is None
    assert textbox == {"interactive": False, "value": {"text": "", "files": []}, "__type__": "update"}
    assert [m["metadata"] for m in history] == [{"title": "image"}, None]
    assert history[1] == {"role": "user", "metadata": None, "content": QUESTION, "options": None}
    file = history[0]["content"]["file"]
    assert history[0]["content"]["alt_text"] is None and history[0]["role"] == "user"
    assert file["path"].endswith("/red.png") and file["mime_type"] == "image/png"
    assert file["url"] == f"{official.url}/gradio_api/file={file['path']}"
    assert file["meta"] == {"_type": "gradio.FileData"}


# ---- chatinterface only -----------------------------------------------------------------------------------------
async def test_chatinterface_needs_every_step_of_the_chain() -> None:
    """gradio's ChatInterface gives its bot step the history from ``chatbot_state``, a State that only the step
    AFTER the bot step (dep 3) refreshes: a client that skips it loses the earlier turns without any error."""
    with start_standin(layout="chatinterface", pace_ms=5, chunks=8, extra_args=QUOTAS) as standin:
        async with aiohttp.ClientSession() as s:
            full = PageClient(s, standin.url)
            await full.load()
            await full.turn("one")
            assert (await full.turn("two")).startswith('You said: "two". Earlier turns: 1. Seen: turn 1 text "one";')

            skipping = PageClient(s, standin.url)
            await skipping.load()
            for turn_text in ("one", "two"):
                skipping.values[skipping.textbox] = {"text": turn_text, "files": []}
                for dep in (0, 1, 2):  # the user steps and the bot step, not the State sync after it
                    await skipping.run(dep)
            assert skipping.reply() == 'You said: "two". Earlier turns: 0. Seen: turn 1 text "two". ' + (
                CHATINTERFACE_DEFAULTS
            )
