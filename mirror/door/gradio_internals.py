"""Every private part of gradio the app reads, in one place: its queue's waiting and running events, an event's
function, enqueue time and id, dropping a queued event, the login tokens of ``auth=``; and one patch of its file
walks (``pass_over_file_free``), two shortcuts for its session set-up (``sign_block_classes``,
``reuse_block_configs``) and its queue's analytics left off (``skip_queue_analytics``).

Why: none of these is gradio's public API (gradio 6.x names them ``Blocks._queue``, ``Event.fn._id``,
``Event.enqueue_time``, ``App.tokens``...). The door needs them to count a client's queued turns, to drop turns
whose stream never opened and to know a login before gradio does; kept here, a gradio upgrade that renames one
breaks this module only, and ``tests/test_gradio_internals.py`` checks them against the installed gradio. Each
function reads defensively (``getattr`` with a default): before ``launch`` there is no queue, and a missing part
reads as empty rather than failing a visitor's request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any


def _queue(blocks: Any) -> Any:
    return getattr(blocks, "_queue", None)


QUEUE_IDLE_POLL_S = 0.01


def slow_the_idle_poll(blocks: Any, seconds: float = QUEUE_IDLE_POLL_S) -> None:
    """gradio's queue looks for new events every 1 ms while it has none or all its workers are busy
    (``Queue.sleep_when_free``): a thousand wake-ups a second, about 5 % of a core for an app nobody is using, and as
    much again for each idle server of a test run. Every 10 ms costs a tenth of that, and a turn waits at most 10 ms
    more to start, against the hundreds of milliseconds the Space takes. Called after ``queue()``, which makes it."""
    queue = _queue(blocks)
    if queue is not None and hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = seconds


def sign_block_classes(blocks: Any) -> int:
    """Give the ``__init__`` of each block class of the page its signature, worked out once; returns how many.

    Why: each block's ``get_config`` asks ``inspect.signature(cls.__init__)``, worked out anew every time. gradio
    asks it for every block of the page when it builds a new session's state (half of the 8 ms that cost here, 88
    blocks, until ``reuse_block_configs`` made those configs once), and still for each block a step's update gives a
    session (the textbox unlocked after every turn). ``inspect.signature`` returns a function's ``__signature__``
    as it is; the signature is the same one it would work out."""
    classes = {type(block) for block in (getattr(blocks, "blocks", None) or {}).values()}
    signed = 0
    for cls in classes:
        init = cls.__init__
        if getattr(init, "__signature__", None) is None and inspect.isfunction(init):
            init.__signature__ = inspect.signature(init)  # type: ignore[attr-defined]
            signed += 1
    return signed


def reuse_block_configs(blocks: Any) -> int:
    """Work out the config of each block of the page once; a new session gets copies.

    Why: gradio builds every new session's state (``SessionState``) from ``config_for_block`` of every block of the
    page, worked out anew for each session (3.5 ms here, with ``sign_block_classes``) although the page's blocks do
    not change once it is built: an update for one session makes that session a new block, which is worked out as
    gradio does. A copy is the config's dict and its ``props`` (what a session replaces values in); the values
    themselves are shared, as gradio shares them with the page. Idempotent; patched in this process only. Returns
    how many blocks of ``blocks`` it made."""
    default_config = getattr(blocks, "default_config", None)
    if default_config is None:
        return 0
    config_class: Any = type(default_config)  # gradio's BlocksConfig, not imported: the door imports no gradio

    made: dict[int, tuple[Any, dict[str, Any]]] = getattr(config_class, "_mirror_made", None) or {}
    original: Callable[..., dict[str, Any]] = getattr(config_class, "_mirror_original", None) \
        or config_class.config_for_block
    page = list((getattr(blocks, "blocks", None) or {}).items())
    for key, block in page:
        made[id(block)] = (block, original(key, [], block))

    def config_for_block(_id: int, rendered_ids: list[int], block: Any, renderable: Any = None) -> dict[str, Any]:
        kept = made.get(id(block))
        if kept is None or kept[0] is not block or rendered_ids or renderable is not None \
                or kept[1].get("id") != _id:
            return original(_id, rendered_ids, block, renderable)
        config = dict(kept[1])
        if isinstance(config.get("props"), dict):
            config["props"] = dict(config["props"])
        return config

    config_class._mirror_made, config_class._mirror_original = made, original
    config_class.config_for_block = staticmethod(config_for_block)
    return len(page)


def skip_queue_analytics(blocks: Any) -> bool:
    """Keep gradio's queue from summarizing its events for a monitoring dashboard nobody opens; whether it did.

    Why: gradio's queue records its last 10,000 events and, at the end of every event, builds a pandas DataFrame of
    all of them to summarize them (``Queue.compute_analytics_summary``, in a worker thread that holds the GIL):
    3 ms at 1,000 events, 8 ms at 10,000 here, so what every event cost grew with the app's uptime (a page left
    open adds a timer event every few seconds). Only the dashboard of ``launch(enable_monitoring=True)`` reads
    them, which the app never turns on: one event is kept and the summary is never rebuilt. Called after
    ``launch``; with the dashboard on, nothing changes."""
    queue = _queue(blocks)
    if queue is None or getattr(blocks, "enable_monitoring", None):
        return False
    if hasattr(queue, "ANALYTICS_MAX_EVENTS"):
        queue.ANALYTICS_MAX_EVENTS = 1
    if hasattr(queue, "ANAYLTICS_CACHE_FREQUENCY"):  # sic: gradio's name
        queue.ANAYLTICS_CACHE_FREQUENCY = 2**62
    return True


def waiting_events(blocks: Any) -> list[Any]:
    """Events in gradio's queue that have not started."""
    queue = _queue(blocks)
    if queue is None:
        return []
    per_id = getattr(queue, "event_queue_per_concurrency_id", None) or {}
    return [event for waiting in list(per_id.values()) for event in list(waiting.queue)]


def running_events(blocks: Any) -> list[Any]:
    """Events gradio runs now."""
    queue = _queue(blocks)
    jobs = getattr(queue, "active_jobs", None) if queue is not None else None
    return [event for job in list(jobs or []) for event in (job or [])]


def fn_id(event: Any) -> int:
    """The index of the event's function (the ``fn_index`` of ``/config``)."""
    return int(event.fn._id)


def event_id(event: Any) -> str:
    return str(event._id)


def enqueue_time(event: Any) -> float:
    """When the event joined the queue (``time.monotonic``)."""
    return float(event.enqueue_time)


async def drop_waiting(blocks: Any, event: Any) -> None:
    """Take a waiting event out of the queue (gradio tells its stream, if one is open, that it ended)."""
    queue = _queue(blocks)
    if queue is not None:
        await queue.clean_events(event_id=event._id)


def event_fn_indices(blocks: Any) -> Any:
    """The app's events by ``fn_index`` (a mapping; None before the Blocks are built)."""
    return getattr(blocks, "fns", None)


def login_of(blocks: Any, cookies: Iterable[tuple[str, str]]) -> str | None:
    """The login name behind a request's cookies (name, value pairs in the order sent) when ``launch(auth=...)``
    signed it in, else None."""
    app = getattr(blocks, "server_app", None) or getattr(blocks, "app", None)
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not tokens or not cookie_id:
        return None
    names = (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}")
    for name, token in cookies:
        if name in names and token in tokens:
            return str(tokens[token])
    return None


def pass_over_file_free(is_file_free: Callable[[Any], bool]) -> None:
    """gradio walks every output value whole, twice per streamed update, to find its files (files into its cache,
    then its root URL onto their URLs: ``gradio_client.utils.traverse`` and ``async_traverse``), copying every dict
    and list on the way. For a chat of 200 messages that was a quarter of the app's CPU per update (py-spy), for
    messages with no file that did not change. A value ``is_file_free`` vouches for is handed on as it is: those
    walks look only for dicts with a ``"path"`` (gradio's three file tests), so they would find nothing in it and
    return an equal copy. Any other walk is left alone. Idempotent per function; patched in this process only."""
    from gradio_client import utils as client_utils

    if getattr(client_utils.traverse, "file_free", None) is is_file_free:
        return
    file_tests = {client_utils.is_file_obj, client_utils.is_file_obj_with_meta, client_utils.is_file_obj_with_url}
    walk, async_walk = client_utils.traverse, client_utils.async_traverse

    # gradio's walks recurse through these module names, so each level below is passed over the same way
    def traverse(json_obj: Any, func: Callable[..., Any], is_root: Callable[..., bool]) -> Any:
        if is_root in file_tests and is_file_free(json_obj):
            return json_obj
        return walk(json_obj, func, is_root)

    async def async_traverse(json_obj: Any, func: Callable[..., Any], is_root: Callable[..., bool]) -> Any:
        if is_root in file_tests and is_file_free(json_obj):
            return json_obj
        return await async_walk(json_obj, func, is_root)

    traverse.file_free = is_file_free  # type: ignore[attr-defined]
    client_utils.traverse, client_utils.async_traverse = traverse, async_traverse
