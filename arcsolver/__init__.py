"""arcsolver: an ARC-AGI competition pipeline built on the Tiny Recursive Model (TRM)."""

__version__ = "0.1.0"
