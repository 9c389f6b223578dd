"""The parts of the Phi-4 Mirror app: ``app.py`` lays out the page and wires these together; each is one concern,
so a change to one feature touches one module. docs/architecture.md draws the layers and what may import what.

- Settings and start: ``settings`` (flags and environment -> one frozen ``AppSettings``), ``launch`` (logins, the
  share link, serving, a clean shutdown), ``cluster`` (N app processes behind nginx).
- The Space: ``holder`` (the process's one ``Phi4Bridge``), ``space_status`` (which Space answers, the Hub's word,
  the fallbacks, the badge), ``generation`` (the Space's own controls as "Generation settings").
- The chat: ``handlers`` (``ChatService`` and the chat's events), ``chat_values`` (pure helpers on the chatbot
  value), ``chatbot`` (gradio's Chatbot, made cheaper to stream into), ``pacing`` (at most N updates a second),
  ``export`` (JSON and Markdown downloads).
- Other ways in: ``openai_api`` (``/v1`` on the app's server), ``mcp_tools`` and ``mcp_gate`` (Phi-4 as MCP tools,
  and the key check in front of them).
- The QA tab: ``qa_tab`` (layout), ``qa_handlers`` (its events, over the QA store), ``qa_gallery`` (its HTML).
- Who may do what, and what it costs: ``host`` (who the host is), ``budget``, ``shared_budget`` and
  ``redis_budget`` (turns per visitor: in memory, in one SQLite file for a cluster on one host, in Redis for several
  hosts), ``usage`` and ``usage_tab`` (one row per turn, the host's Usage tab).
- The door and the disk: ``guard`` (the bookkeeping and limits), ``door`` (the ASGI middleware that applies them),
  ``slow_clients`` (deadlines for clients slow on purpose), ``cleanup`` (the app's own files, and their removal).
"""
