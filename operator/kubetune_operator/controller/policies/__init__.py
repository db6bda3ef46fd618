"""One small pure module per run policy: restart, deadline, TTL, suspend (jobset's layout)."""
