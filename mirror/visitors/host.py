"""Who is the host: the person whose HF token and quota the app spends, and who alone may see the Usage view and
switch the app to another Space.

Why one place: the Space picker, the ``switch_space`` route and the Usage view must agree on it, and a shared link
must never make a stranger the host by accident.

- ``--admin USER`` given: exactly those logins.
- no login, no share link, not a Space: the local user (whoever opens the page is the one who started the app).
- otherwise (``--share``, ``--auth`` or a Space without ``--admin``): nobody; the page says how to become the host.
"""

from __future__ import annotations

from typing import Any

from ..settings import AppSettings


def host_rule(settings: AppSettings) -> str:
    """``admins``, ``local`` or ``nobody`` (see the module's docstring)."""
    if settings.admins:
        return "admins"
    if not settings.auth and not settings.share and not settings.on_space:
        return "local"
    return "nobody"


def is_host(settings: AppSettings, request: Any) -> bool:
    """Whether the visitor behind ``request`` (a ``gr.Request``) is the host."""
    rule = host_rule(settings)
    if rule == "local":
        return True
    if rule == "nobody":
        return False
    return bool(getattr(request, "username", None)) and request.username in settings.admins


def who_may_switch(settings: AppSettings) -> str:
    """The Space picker's line for a visitor who is not the host."""
    if host_rule(settings) == "admins":
        return "Only the host's login (--admin) can switch the Space."
    return ("Nobody can switch the Space here: the app is shared and no host login is named (start it with "
            "--admin USER).")
