"""The QA tab (docs/qa.md): ``tab`` (layout and wiring), ``handlers`` (its events, over ``phi4_bridge.qa``'s store),
``gallery`` (its HTML)."""
