"""Errors a user can cause. The CLI prints them as one line, without a traceback."""


class ArcsolverError(Exception):
    """Base class for every error caused by user input (files, tasks, recipes, checkpoints)."""


class DataError(ArcsolverError):
    """A data file or task is missing, unreadable or malformed."""


class ConfigError(ArcsolverError):
    """A recipe or a --set override is invalid."""


class CheckpointError(ArcsolverError):
    """A checkpoint is missing, corrupt or does not match the model."""
