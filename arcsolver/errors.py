"""Errors a user can cause. The CLI prints them as one line, without a traceback."""


class ArcsolverError(Exception):
    """Base class for every error caused by user input (files, tasks, recipes, checkpoints)."""


class DataError(ArcsolverError):
    """A data file or task is missing, unreadable or malformed."""


class ConfigError(ArcsolverError):
    """A recipe or a --set override is invalid."""


class CheckpointError(ArcsolverError):
    """A checkpoint is missing, corrupt or does not match the model."""


class Diverged(ArcsolverError):
    """Training produced a non-finite loss or weights: the model is dead, the run stops."""


class SubmissionRejected(DataError):
    """A submission the competition would reject; `problems` holds every reason, one line each."""

    def __init__(self, source: str, problems: list[str]):
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"rejected submission: {problems[0]}{more}")  # each problem names the file
        self.source = source
        self.problems = problems
