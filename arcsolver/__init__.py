"""arcsolver: an ARC-AGI competition pipeline built on the Tiny Recursive Model (TRM)."""

import time

__version__ = "0.1.0"  # the one statement of the version: pyproject.toml reads it from here

# When this process began, near enough (the first of its modules to load): a command's time
# budget counts from here, its own start-up (importing torch takes seconds) included.
STARTED = time.monotonic()
