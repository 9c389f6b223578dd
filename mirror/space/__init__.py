"""Which Space answers: ``holder`` (the process's one bridge), ``space_status`` (the Hub's word, the fallbacks, the
badge), ``generation`` (the Space's own controls as "Generation settings")."""
