"""The parts of the Phi-4 Mirror app (``app.py`` is the layout; these are what it is made of).

``settings`` (flags -> one ``Settings``), ``holder`` (the one bridge per process), ``space_status`` (reachability,
fallback to the stand-in, the badge), ``handlers`` (chat turns), ``export`` (JSON/Markdown), ``launch``
(auth, share, serving).
"""
