"""`xgen-declare pin COMMIT`: the git source held at COMMIT (issue #24's verb; the same as `source pin`)."""

from xgen_declare.cli.source import pin as command

__all__ = ["command"]
