"""`xgen-declare unpin`: the git source follows its ref again (issue #24's verb; the same as `source unpin`)."""

from xgen_declare.cli.source import unpin as command

__all__ = ["command"]
