"""The OpenAI chat-completions request, as pydantic models, and the answers in OpenAI's shapes.

Why pydantic and not hand parsing: FastAPI and the openai SDK share these shapes; a model validated here gives a
400 that names the field (``messages[2].content[0].image_url.url``) the way OpenAI's own API does.

Only what this Space can honour is accepted. Every field OpenAI defines is listed: those that change nothing here
(``user``, ``metadata``...) are taken and ignored; those the Space cannot do (tools, ``n`` > 1, ``response_format``,
logprobs, stop sequences...) are refused by name in ``messages.check_request``; anything else is unknown
and refused too, so no setting is ever dropped without a word.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODEL_ID = "phi-4-multimodal"
# Other names people use for the same model; ``/v1/models`` lists only MODEL_ID.
MODEL_ALIASES = frozenset({MODEL_ID, "phi-4-multimodal-instruct", "microsoft/phi-4-multimodal",
                           "microsoft/phi-4-multimodal-instruct", "phi4-multimodal", "phi-4-mm"})
OWNED_BY = "microsoft"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str
    detail: str | None = None  # "auto", "low", "high": the Space has no such control; any value is taken as is


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Strict):
    data: str  # base64
    format: Literal["wav", "mp3"]


class AudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


class RefusalPart(_Strict):
    type: Literal["refusal"]
    refusal: str


class OtherPart(BaseModel):
    """Any other part type (``file``, ``image_file``...): taken so that the refusal can name it."""

    model_config = ConfigDict(extra="allow")
    type: str


Part = Annotated[TextPart | ImagePart | AudioPart | RefusalPart | OtherPart, Field(union_mode="left_to_right")]


class Message(BaseModel):
    """One message. ``tool_calls``, ``function_call`` and the ``tool`` role are kept so they can be refused by
    name."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None
    function_call: Any | None = None
    refusal: str | None = None
    audio: Any | None = None
    # What a gradio chat's history carries besides (``gr.load_chat`` sends it as is): display only, ignored.
    metadata: Any | None = None
    options: Any | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``. Unknown fields are kept (``model_extra``) and refused by name."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None
    # Accepted and ignored: they change nothing about the answer.
    user: str | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # Refused when set to anything that would change the answer (``messages.UNSUPPORTED``).
    tools: list[Any] | None = None
    tool_choice: Any | None = None
    functions: list[Any] | None = None
    function_call: Any | None = None
    response_format: Any | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: Any | None = None
    prediction: Any | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    web_search_options: Any | None = None


# --- answers ---------------------------------------------------------------------------------------------------

def new_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def estimate_tokens(text: str) -> int:
    """An estimate (about four characters a token) of what the Space never reports: docs/openai-api.md says so."""
    return math.ceil(len(text) / 4)


def usage(prompt_chars: int, reply: str) -> dict[str, int]:
    """Estimated from characters (the Space counts no tokens); files are not counted."""
    prompt, completion = math.ceil(prompt_chars / 4), estimate_tokens(reply)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(cid: str, model: str, reply: str, finish: str, used: dict[str, int]) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` object."""
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": None},
                         "logprobs": None, "finish_reason": finish}],
            "usage": used}


def chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None,
          with_usage: bool = False) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``usage`` is null on each when the client asked for a usage chunk."""
    out: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                           "system_fingerprint": None,
                           "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if with_usage:
        out["usage"] = None
    return out


def usage_chunk(cid: str, created: int, model: str, used: dict[str, int]) -> dict[str, Any]:
    """The last chunk ``stream_options.include_usage`` asks for: no choices, the usage."""
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None, "choices": [], "usage": used}


def models_list(created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(created)]}


def model_card(created: int) -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": created, "owned_by": OWNED_BY}
