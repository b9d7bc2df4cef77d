"""Desired state: each model resolved once per pass (manifest + inventory -> backend, paths, GPUs,
placement), then rendered into the exact argv/env/port of its process; Ray and RPC entries."""
