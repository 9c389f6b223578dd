"""Serving the app: ``launch`` (logins, the share link, serving, a clean shutdown; docs/sharing.md)."""
