"""Backend families (families.py: ALL the facts), `backend: auto` selection, version dialects and GPU
pinning."""
