"""Read the ports the daemon's state holds (so `render` shows the real ports once a daemon ran)."""

from __future__ import annotations

import json
from pathlib import Path


def held_ports(state_dir: str) -> dict[str, int]:
    """name -> port from STATE_DIR/models/*.json; empty when there is no (readable) state."""
    out: dict[str, int] = {}
    models = Path(state_dir) / "models"
    try:
        files = sorted(models.glob("*.json"))
    except OSError:
        return out
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str) and isinstance(data.get("port"), int):
            out[data["name"]] = data["port"]
    return out
