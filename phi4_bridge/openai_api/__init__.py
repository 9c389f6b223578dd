"""The OpenAI-compatible API (``/v1/models``, ``/v1/chat/completions``), on the app's server or alone
(``python -m phi4_bridge serve``). docs/openai-api.md is the manual.

Read top down: ``server`` (the FastAPI routes, ``build_api``) -> ``bounds`` (size and count limits, before any
work), ``messages`` (a request as a turn: pure), ``schema`` (the request and answers as pydantic models),
``errors`` (each bridge error as one HTTP status), ``fetch`` (http(s) image URLs, when turned on); ``serve``
(``BridgeRunner``: the API on one bridge, without the app).
"""
