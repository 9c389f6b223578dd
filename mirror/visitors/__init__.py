"""Who may do what, and what it costs: ``host`` (who the host is), ``budget``, ``shared_budget`` and ``redis_budget``
(turns per visitor: in memory, in one SQLite file, in Redis), ``usage`` and ``usage_tab`` (one row per turn, the
host's Usage tab). docs/sharing.md and docs/cluster.md."""
