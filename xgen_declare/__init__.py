"""xgen-declare: declarative LLM serving on your own GPU hosts."""

__version__ = "0.1.0"
