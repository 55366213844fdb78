"""The Hugging Face Hub, optional (the `hub` extra): a reference checkpoint downloaded for
import-reference, and a run pushed as a model repository.

A Hub file is named `hf:OWNER/REPO/PATH`. Downloads go through huggingface_hub's cache
(`HF_HOME`, `HF_HUB_CACHE`): a file already there is not fetched again, a download cut short
resumes where it stopped, and `HF_HUB_OFFLINE=1` reads the cache alone.
"""

from __future__ import annotations

import os
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
            f"{name}: not in the Hub cache and the Hub cannot be reached (offline or no network); connect, or "
            "download the file elsewhere and give its local path"
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
    except errors.HfHubHTTPError as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ArcsolverError(f"{name}: the Hub refused the download ({first}); try again later") from None
    except OSError as e:  # a full disk, an unwritable cache, a connection dropped
        raise ArcsolverError(
            f"{name}: download failed ({e.strerror or type(e).__name__}); free space or set HF_HOME to a writable "
            "directory, and run the command again to resume"
        ) from None


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
    puzzles.txt; laid out as a run directory, so a clone of the repository is one solve takes."""
    from arcsolver.engine.card import CARD_FILE
    from arcsolver.engine.checkpoint import find_checkpoint, run_of

    ckpt_dir = find_checkpoint(run)
    run_dir = run_of(ckpt_dir) or ckpt_dir
    files = {name: run_dir / name for name in ("config.json", CARD_FILE, "puzzles.txt") if (run_dir / name).is_file()}
    if CARD_FILE not in files:
        raise ArcsolverError(
            f"{run_dir}: no {CARD_FILE} (the model card pretrain and import-reference write); write one before pushing"
        )
    inside = f"checkpoints/{ckpt_dir.name}" if run_dir != ckpt_dir else ""
    for name in ("model.safetensors", "ema.safetensors", "state.json", "puzzles.txt"):
        if (ckpt_dir / name).is_file():
            files[f"{inside}/{name}".lstrip("/")] = ckpt_dir / name
    return files


def push_run(run: Path, to: str) -> tuple[HubPath, dict[str, Path]]:
    """Upload a run's weights, config, model card and puzzles.txt to a model repository of the Hub
    (created if need be) in one commit; refused without a Hub token."""
    where = parse_hub(to, need_path=False)
    files = run_files(run)
    hub = _hub()
    token = hub.get_token()
    if not token:
        raise ArcsolverError(f"{to}: pushing needs a Hub token; log in with `hf auth login` or set HF_TOKEN")
    api = hub.HfApi(token=token)
    operations = [hub.CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files.items()]
    try:
        api.create_repo(where.repo_id, repo_type="model", exist_ok=True)
        api.create_commit(where.repo_id, operations, commit_message=f"arcsolver push of {Path(run).name}")
    except OSError as e:  # the Hub's HTTP errors are OSErrors too
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ArcsolverError(
            f"{to}: the upload failed ({first}); check the token's write access and try again"
        ) from None
    return where, files
