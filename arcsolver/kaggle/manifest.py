"""The bundle's manifest.json: the arcsolver version, each checkpoint, the requirements to install
on each Python, and every file's size and SHA-256. It is written last, so a folder without it is an
unfinished bundle; `kaggle check` verifies every file against it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from arcsolver.atomic import atomic_write_text

MANIFEST = "manifest.json"
WHEELS = "wheels"
CHECKPOINT = "checkpoint"
RECIPE = "recipe.toml"


class FileEntry(BaseModel):
    path: str  # relative to the bundle, with forward slashes
    size: int
    sha256: str


class CheckpointInfo(BaseModel):
    name: str  # the step_XXXXXXX directory it was copied from
    folder: str = CHECKPOINT  # its folder in the bundle (checkpoint_folder)
    step: int
    table_rows: int | None = None  # puzzle-table rows in the bundle, the blank one included
    full_table_rows: int | None = None  # ... in the checkpoint it was cut from
    full_bytes: int | None = None  # the checkpoint's files before the table was slimmed


class Manifest(BaseModel):
    arcsolver: str
    pythons: list[str]  # the Python versions the wheels are for, e.g. ["3.10", "3.11", "3.12", "3.13"]
    platform: str
    recipe: str
    checkpoint: CheckpointInfo
    ensemble: list[CheckpointInfo] = []  # an ensemble's other checkpoints, in the order they answer
    # For each of pythons: what to install from wheels/ besides arcsolver (markers resolved for it)
    requirements: dict[str, list[str]]
    files: list[FileEntry]

    def checkpoints(self) -> list[CheckpointInfo]:
        """Every checkpoint of the bundle, in the order the solve takes them."""
        return [self.checkpoint, *self.ensemble]


def checkpoint_folder(index: int) -> str:
    """The bundle's folder of its index-th checkpoint: checkpoint, checkpoint-2, checkpoint-3, ..."""
    return CHECKPOINT if index == 0 else f"{CHECKPOINT}-{index + 1}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(root: Path) -> list[Path]:
    """Every file under root but the manifest, as sorted relative paths."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p != root / MANIFEST)


def write_manifest(root: Path, manifest: Manifest) -> None:
    atomic_write_text(root / MANIFEST, json.dumps(manifest.model_dump(mode="json"), indent=1) + "\n")


def file_entries(root: Path) -> list[FileEntry]:
    return [
        FileEntry(path=p.as_posix(), size=(root / p).stat().st_size, sha256=sha256(root / p))
        for p in bundle_files(root)
    ]
