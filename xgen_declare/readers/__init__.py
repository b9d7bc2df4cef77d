"""Generic readers below every stage: bounded reads of paths that came from outside."""
