"""The door and the disk (docs/security.md): ``guard`` (the bookkeeping and limits), ``middleware`` (``Door``, the
ASGI middleware that applies them to every request), ``slow_clients`` (deadlines for clients slow on purpose),
``cleanup`` (the app's own files, and their removal)."""
