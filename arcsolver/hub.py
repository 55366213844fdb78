"""The Hugging Face Hub, optional (the `hub` extra): a reference checkpoint downloaded for
import-reference, and a run pushed as a model repository.

A Hub file is named `hf:OWNER/REPO/PATH`. Downloads go through huggingface_hub's cache
(`HF_HOME`, `HF_HUB_CACHE`): a file already there is not fetched again, a download cut short
resumes where it stopped, and `HF_HUB_OFFLINE=1` reads the cache alone.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from arcsolver.errors import ArcsolverError

SCHEME = "hf:"
INSTALL = "pip install 'arcsolver[hub]'"


@dataclass(frozen=True)
class HubPath:
    """A repository of the Hub and a path inside it ('' for the whole repository)."""

    repo_id: str
    path: str = ""

    def __str__(self) -> str:
        return f"{SCHEME}{self.repo_id}" + (f"/{self.path}" if self.path else "")


def is_hub(spec: str | os.PathLike) -> bool:
    return str(spec).startswith(SCHEME)


def parse_hub(spec: str, need_path: bool) -> HubPath:
    """hf:OWNER/REPO[/PATH] as a HubPath; ArcsolverError naming spec when it is not one."""
    parts = str(spec)[len(SCHEME) :].strip("/").split("/")
    shape = "hf:OWNER/REPO/PATH" if need_path else "hf:OWNER/REPO"
    if len(parts) < (3 if need_path else 2) or not all(parts) or any(p in (".", "..") for p in parts):
        raise ArcsolverError(f"{spec}: not a Hub path; write it {shape}, e.g. hf:arcprize/trm_arc_prize_verification")
    if not need_path and len(parts) > 2:
        raise ArcsolverError(f"{spec}: a repository is named {shape}, without a path inside it")
    return HubPath("/".join(parts[:2]), "/".join(parts[2:]))


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ArcsolverError(f"the Hugging Face Hub needs huggingface_hub: {INSTALL}") from None
    return huggingface_hub


def _download(hub, where: HubPath, filename: str, optional: bool = False) -> Path | None:
    """One file of the repository, from the cache or the Hub (progress bar, resumed if cut short)."""
    from huggingface_hub import errors

    name = f"{SCHEME}{where.repo_id}/{filename}"
    try:
        return Path(hub.hf_hub_download(where.repo_id, filename))
    except errors.LocalEntryNotFoundError:
        if optional:
            return None
        raise ArcsolverError(
            f"{name}: not in the Hub cache and the Hub at {hub.constants.ENDPOINT} cannot be reached (offline or no "
            "network); connect, or download the file elsewhere and give its local path"
        ) from None
    except errors.EntryNotFoundError:
        if optional:
            return None
        raise ArcsolverError(
            f"{name}: no such file in the repository; check the path (e.g. arc_v1_public/step_518071)"
        ) from None
    except errors.GatedRepoError:
        raise ArcsolverError(
            f"{name}: the repository is gated; accept its terms on the Hub and log in (hf auth login)"
        ) from None
    except errors.RepositoryNotFoundError:
        raise ArcsolverError(
            f"{name}: no such repository on the Hub (or it is private: log in with hf auth login)"
        ) from None
    except errors.RevisionNotFoundError:
        raise ArcsolverError(f"{name}: the repository has no main revision") from None
    except errors.HFValidationError as e:
        raise ArcsolverError(f"{name}: not a name the Hub accepts ({_first_line(e)}); check OWNER/REPO") from None
    except ValueError as e:  # the cache's refs/main names a revision outside its snapshots, or is not text
        refs = Path(hub.constants.HF_HUB_CACHE) / f"models--{where.repo_id.replace('/', '--')}" / "refs" / "main"
        cause = "not text" if isinstance(e, UnicodeDecodeError) else "no revision the cache can hold"
        raise ArcsolverError(f"{name}: the Hub cache's {refs} is {cause}; remove it and download again") from None
    except errors.HfHubHTTPError as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ArcsolverError(f"{name}: the Hub refused the download ({first}); try again later") from None
    except OSError as e:  # a full disk, an unwritable cache, a connection dropped
        raise ArcsolverError(
            f"{name}: download failed ({e.strerror or type(e).__name__}); free space or set HF_HOME to a writable "
            "directory, and run the command again to resume"
        ) from None
    except _network_errors() as e:  # a connection refused, reset or timed out
        raise _unreachable(name, e) from None


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__


def download_reference(spec: str, settings_file: str) -> Path:
    """The local path of a reference checkpoint file of the Hub, with settings_file (its
    all_config.yaml), where the repository has one, downloaded beside it."""
    where = parse_hub(spec, need_path=True)
    hub = _hub()
    checkpoint = _download(hub, where, where.path)
    assert checkpoint is not None
    parent = where.path.rpartition("/")[0]
    _download(hub, where, f"{parent}/{settings_file}" if parent else settings_file, optional=True)
    return checkpoint


def run_files(run: Path) -> dict[str, Path]:
    """What `push` uploads of a run directory (or a checkpoint of one), by path in the repository:
    the config, the model card, puzzles.txt, and the newest checkpoint's safetensors, state.json and
    puzzles.txt; laid out as a run directory, so a clone of the repository is one solve takes. Each
    is the resolved path of a regular file inside the run (run_file)."""
    from arcsolver.engine.card import CARD_FILE
    from arcsolver.engine.checkpoint import find_checkpoint, run_of
    from arcsolver.engine.pretrained import MEAN_FILE, VERSIONS_FILE

    ckpt_dir = find_checkpoint(run)
    run_dir = run_of(ckpt_dir) or ckpt_dir
    wanted = {name: run_dir / name for name in ("config.json", CARD_FILE, VERSIONS_FILE)}
    inside = f"checkpoints/{ckpt_dir.name}" if run_dir != ckpt_dir else ""
    for name in ("model.safetensors", "ema.safetensors", MEAN_FILE, "state.json", VERSIONS_FILE):
        wanted[f"{inside}/{name}".lstrip("/")] = ckpt_dir / name
    files = {name: run_file(run_dir, path) for name, path in wanted.items() if os.path.lexists(path)}
    if CARD_FILE not in files:
        raise ArcsolverError(
            f"{run_dir}: no {CARD_FILE} (the model card pretrain and import-reference write); write one before pushing"
        )
    return files


def run_file(run_dir: Path, path: Path) -> Path:
    """path with every link resolved, which must be a regular file inside run_dir (itself
    resolved): a link leading out of the run, or a directory, pipe or device, is refused naming
    path, and nothing outside the run is ever opened."""
    real, root = Path(os.path.realpath(path)), Path(os.path.realpath(run_dir))
    if root not in real.parents:
        raise ArcsolverError(
            f"{path}: a link that leads out of the run (to {real}); push uploads only the run's own files: "
            "replace the link with a copy of the file, or remove it"
        )
    try:
        mode = os.stat(real).st_mode
    except OSError as e:
        raise ArcsolverError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise ArcsolverError(
            f"{path}: not a regular file (a directory, pipe, socket or device); push uploads only files: remove it"
        )
    return real


def check_pushed(files: dict[str, Path], ckpt_dir: Path) -> None:
    """Load what is pushed as solve would, so that what leaves is a run solve takes: the
    checkpoint's model (state, weights, EMA, the table's mean) and the task versions of its
    puzzles.txt; the card and config are read as text and JSON. CheckpointError or DataError otherwise."""
    import torch

    from arcsolver.engine.card import CARD_FILE
    from arcsolver.engine.checkpoint import read_state
    from arcsolver.engine.pretrained import load_model, trained_versions
    from arcsolver.reader import read_json, read_text

    read_state(ckpt_dir)  # a run's newest folder without one is no checkpoint: said naming its state.json
    load_model(ckpt_dir, torch.device("cpu"))
    trained_versions(ckpt_dir, [])  # every line a task version, as solve reads it
    read_text(files[CARD_FILE])
    if "config.json" in files:
        read_json(files["config.json"])


def _network_errors() -> tuple[type[Exception], ...]:
    """What the HTTP client that huggingface_hub uses (httpx2, httpx or requests) raises for a
    connection refused, reset or timed out: none of them is always an OSError."""
    found = []
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        error = getattr(sys.modules.get(module), name, None)
        if isinstance(error, type) and issubclass(error, Exception):
            found.append(error)
    return tuple(found)


def _unreachable(name: str, e: Exception) -> ArcsolverError:
    """The one line for a connection to the Hub that failed: name, the endpoint and the cause."""
    from huggingface_hub import constants

    return ArcsolverError(
        f"{name}: the Hub at {constants.ENDPOINT} cannot be reached ({_first_line(e)}); check the network, and "
        "HF_ENDPOINT where it is set, then run the command again"
    )


def push_run(run: Path, to: str) -> tuple[HubPath, dict[str, Path]]:
    """Upload a run's weights, config, model card and puzzles.txt to a model repository of the Hub
    (created if need be) in one commit: only the run's own regular files (run_file), loaded as
    solve would before the first byte leaves; refused without a Hub token."""
    from arcsolver.engine.checkpoint import find_checkpoint

    where = parse_hub(to, need_path=False)
    files = run_files(run)
    hub = _hub()
    token = hub.get_token()
    if not token:
        raise ArcsolverError(f"{to}: pushing needs a Hub token; log in with `hf auth login` or set HF_TOKEN")
    check_pushed(files, find_checkpoint(run))
    api = hub.HfApi(token=token)
    try:
        operations = [hub.CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(p)) for name, p in files.items()]
        api.create_repo(where.repo_id, repo_type="model", exist_ok=True)
        api.create_commit(where.repo_id, operations, commit_message=f"arcsolver push of {Path(run).name}")
    except hub.errors.HfHubHTTPError as e:  # the Hub answered, and refused
        raise ArcsolverError(
            f"{to}: the Hub at {hub.constants.ENDPOINT} refused the upload ({_first_line(e)}); check the token's "
            "write access and try again"
        ) from None
    except _network_errors() as e:
        raise _unreachable(to, e) from None
    except (OSError, ValueError) as e:  # a file of the run gone since it was checked; an answer not understood
        raise ArcsolverError(f"{to}: the upload failed ({_first_line(e)}); push again") from None
    return where, files
