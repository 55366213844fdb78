"""arcsolver: an ARC-AGI competition pipeline built on the Tiny Recursive Model (TRM)."""

__version__ = "0.1.0"  # the one statement of the version: pyproject.toml reads it from here
