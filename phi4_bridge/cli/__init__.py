"""The command line of the bridge (``python -m phi4_bridge``, ``phi4-bridge``; docs/cli.md): ``main`` (the parser,
``chat``, ``spaces``, ``serve``; ``qa`` comes from ``phi4_bridge.qa.cli``), ``doctor`` (can the bridge drive this
Space, and why not) with ``doctor_checks`` (its live turns) and ``doctor_report`` (what it found, in words).
"""
