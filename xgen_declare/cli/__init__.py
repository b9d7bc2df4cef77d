"""Command line: one module per verb (see VERBS in main.py)."""
