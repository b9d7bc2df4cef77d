"""Processes: the supervisor and what it needs (process groups, probes, back-off, logs, the state
store, rollout history and provenance)."""
