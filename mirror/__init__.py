"""The parts of the Phi-4 Mirror app, one subpackage a feature: ``app.py`` lays out the page and wires these
together. docs/architecture.md draws the layers and what may import what.

- ``settings`` (flags and environment -> one frozen ``AppSettings``) and ``cluster`` (``python -m mirror.cluster``:
  N app processes behind nginx) stay at the top.
- ``space``: ``holder`` (the process's one ``Phi4Bridge``), ``space_status`` (which Space answers, the Hub's word,
  the fallbacks, the badge), ``generation`` (the Space's own controls as "Generation settings").
- ``chat``: ``handlers`` (``ChatService`` and the chat's events), ``chat_values`` (pure helpers on the chatbot
  value), ``chatbot`` (gradio's Chatbot, made cheaper to stream into), ``pacing`` (at most N updates a second),
  ``export`` (JSON and Markdown downloads).
- ``apis``, other ways in: ``openai_api`` (``/v1`` on the app's server), ``mcp_tools`` and ``mcp_gate`` (Phi-4 as
  MCP tools, and the key check in front of them).
- ``qa``, the QA tab: ``tab`` (layout), ``handlers`` (its events, over the QA store), ``gallery`` (its HTML).
- ``visitors``, who may do what and what it costs: ``host`` (who the host is), ``budget``, ``shared_budget`` and
  ``redis_budget`` (turns per visitor: in memory, in one SQLite file for a cluster on one host, in Redis for several
  hosts), ``usage`` and ``usage_tab`` (one row per turn, the host's Usage tab).
- ``door``, the door and the disk: ``guard`` (the bookkeeping and limits), ``middleware`` (``Door``, the ASGI
  middleware that applies them), ``slow_clients`` (deadlines for clients slow on purpose), ``cleanup`` (the app's
  own files, and their removal).
- ``serve``: ``launch`` (logins, the share link, serving, a clean shutdown).
"""
