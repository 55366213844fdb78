"""Optional experiment trackers: TensorBoard and wandb receive the records metrics.jsonl holds, at
the moments it gets them (pretraining), and adaptation's progress records (solve).

Neither is required: `run.trackers` names those to feed, and each needs its package (the
`tensorboard` and `wandb` extras). wandb runs offline, its files in the output directory, unless
WANDB_MODE says otherwise or WANDB_API_KEY is set: a run never needs an account or a network.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

from arcsolver.errors import ArcsolverError, ConfigError

# Each tracker's importable package, and the one `pip install` names.
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
# What each tracker needs of its package: (module, attribute) pairs, imported at the check.
NEEDS = {
    "tensorboard": (("torch.utils.tensorboard", "SummaryWriter"),),
    "wandb": (("wandb", "init"), ("wandb", "finish")),
}


def check_trackers(names: Iterable[str], directory: Path | None = None) -> None:
    """Raise ConfigError naming the package and its pip command if a tracker's package is missing
    or broken, and ArcsolverError naming the path if the tracker's directory under `directory`
    cannot be written; called before any data is read, so that a run fails at once rather than
    after its set-up (or at its end, when the trackers close)."""
    for name in dict.fromkeys(names):
        package = PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"run.trackers includes {name}, whose package is not installed: "
                f"pip install {package} (or pip install 'arcsolver[{name}]')"
            )
        for module, attribute in NEEDS[name]:
            try:
                usable = callable(getattr(importlib.import_module(module), attribute, None))
                problem = f"it has no {module}.{attribute}"
            except Exception as e:  # a broken install fails in any way its code does
                usable, problem = False, f"importing {module} fails ({type(e).__name__}: {e})"
            if not usable:
                raise ConfigError(
                    f"run.trackers: the package of {name} is broken: {problem}; "
                    f"reinstall it: pip install --force-reinstall {package}"
                )
        if directory is not None:
            check_writable_directory(Path(directory) / name)


def check_writable_directory(path: Path) -> None:
    """Refuse, in one line naming it, a directory to be written that is not one (a file stands
    there or above it) or that cannot be written (read-only): it need not exist yet, but then its
    nearest existing parent must be a directory that can be written."""
    existing = path
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ArcsolverError(
            f"{existing}: not a directory, where the tracker's directory {path} goes; move it away or choose another --out"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ArcsolverError(
            f"{existing}: cannot write in it (read-only), where the tracker's directory {path} goes; "
            "make it writable or choose another --out"
        )


def wandb_mode() -> str:
    """offline unless the environment sets wandb up: its own WANDB_MODE, or an API key."""
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


class Trackers:
    """The trackers of `names`, writing under directory (tensorboard/ and wandb/ in it).

    `log(record)` sends every number of a record but its step, at that step; `close` flushes.
    name and config label the run (wandb's run name and its config panel).
    """

    def __init__(self, names: Iterable[str], directory: Path, name: str, config: dict | None = None):
        names = list(dict.fromkeys(names))
        directory = Path(directory)
        check_trackers(names, directory)
        self.tensorboard = self.wandb = None
        try:
            self._open(names, directory, name, config)
        except OSError as e:  # the directory changed since the check
            self.close()
            raise ArcsolverError(
                f"{e.filename or directory}: cannot write the trackers' files ({e.strerror or e})"
            ) from None

    def _open(self, names: list[str], directory: Path, name: str, config: dict | None) -> None:
        if "tensorboard" in names:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(log_dir=str(directory / "tensorboard"))
        if "wandb" in names:
            import wandb

            (directory / "wandb").mkdir(parents=True, exist_ok=True)
            self.wandb = wandb.init(
                project="arcsolver", name=name, dir=str(directory), config=config or {}, mode=wandb_mode()
            )

    def log(self, record: dict) -> None:
        """Send record's numbers (bools and strings are not scalars) at record["step"]."""
        step = int(record["step"])
        scalars = {
            k: float(v)
            for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if self.tensorboard is not None:
            for k, v in scalars.items():
                self.tensorboard.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        """Flush and close every tracker; closing again does nothing."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None
