"""Other ways in, on the app's server: ``openai_api`` (``/v1``, docs/openai-api.md), ``mcp_tools`` and ``mcp_gate``
(Phi-4 as MCP tools and the key check in front of them, docs/mcp.md)."""
