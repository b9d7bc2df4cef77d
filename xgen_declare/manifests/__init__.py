"""Manifests: YAML files -> validated `ModelDecl`s (the request model, loading with line numbers,
validation messages that name the file, the line, the field and what to do)."""
