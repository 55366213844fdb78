"""Verify a bundle before uploading it: what the notebook will do on Kaggle, done here first.

Every file matches the manifest and none is unlisted; the wheels install with no index into an
empty folder (arcsolver without its dependencies, so torch is never asked for, then the
manifest's requirements with theirs); the bundled code imports from that folder; the checkpoint
loads. Each problem is one line naming the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from arcsolver.errors import ArcsolverError
from arcsolver.kaggle.bundle import (
    CHECKPOINT,
    MANIFEST,
    WHEELS,
    Manifest,
    bundle_files,
    offline_env,
    pip,
    sha256,
    target_args,
)


@dataclass
class CheckReport:
    summary: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_manifest(bundle: Path) -> Manifest:
    """The bundle's manifest, validated; raises ArcsolverError naming the file."""
    from arcsolver.data.loaders import read_json
    from arcsolver.recipes import validate

    path = bundle / MANIFEST
    if not bundle.is_dir():
        raise ArcsolverError(f"{bundle}: no such folder")
    if not path.is_file():
        raise ArcsolverError(
            f"{path}: missing; an unfinished bundle, or not one (build it with `arcsolver kaggle bundle`)"
        )
    manifest = validate(Manifest, read_json(path), str(path))
    for entry in manifest.files:
        if outside_bundle(entry.path):
            raise ArcsolverError(
                f"{path}: lists {entry.path!r}, which is not a relative path inside the bundle; "
                "rebuild the bundle with `arcsolver kaggle bundle`"
            )
    return manifest


def outside_bundle(rel: str) -> bool:
    """Whether a manifest path could name a file outside the bundle (absolute, a drive, '..', empty)."""
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    return (
        not rel
        or posix.is_absolute()
        or bool(windows.drive or windows.root)
        or ".." in posix.parts
        or ".." in windows.parts
    )


def file_problems(bundle: Path, manifest: Manifest) -> list[str]:
    """Files missing, changed (size or SHA-256) or not listed in the manifest."""
    problems = []
    listed = {entry.path for entry in manifest.files}
    for entry in manifest.files:
        path = bundle / entry.path
        if not path.is_file():
            problems.append(f"{path}: listed in the manifest but missing")
        elif path.stat().st_size != entry.size:
            problems.append(f"{path}: {path.stat().st_size} bytes, the manifest says {entry.size}")
        elif sha256(path) != entry.sha256:
            problems.append(f"{path}: SHA-256 differs from the manifest (the file was changed)")
    for rel in bundle_files(bundle):
        if rel.as_posix() not in listed:
            problems.append(f"{bundle / rel}: not listed in the manifest")
    return problems


def trial_install(bundle: Path, manifest: Manifest, report: CheckReport) -> None:
    """Install the wheels offline into an empty folder, as the notebook does, and import from it."""
    with tempfile.TemporaryDirectory(prefix="arcsolver-check-") as target:
        install = [
            "install",
            "--no-index",
            "--find-links",
            str(bundle / WHEELS),
            "--target",
            target,
            "--no-compile",
            "--quiet",
            *target_args(manifest.python),
        ]
        try:
            pip(
                [*install, "--no-deps", f"arcsolver=={manifest.arcsolver}"],
                "offline install of arcsolver",
                offline_env(),
            )
            pip([*install, *manifest.requirements], "offline install of its requirements", offline_env())
        except ArcsolverError as e:
            report.problems.append(f"{bundle / WHEELS}: {e}")
            return
        installed = sorted(p.name.split("-")[0] for p in Path(target).glob("*.dist-info"))
        if "torch" in installed:
            report.problems.append(
                f"{bundle / WHEELS}: holds torch, which must come from Kaggle's image (its CUDA build)"
            )
            return
        report.summary.append(f"offline install: {len(installed)} packages ({', '.join(installed)}), no torch")
        if manifest.python != f"{sys.version_info.major}.{sys.version_info.minor}":
            report.summary.append(
                f"import: skipped (this is Python {sys.version.split()[0]}, the wheels are for {manifest.python})"
            )
            return
        # The bundled code and dependencies first on the path, this environment's torch behind them
        # (run in the target folder: a checkout's arcsolver/ in the working directory would win).
        probe = (
            "import arcsolver, arcsolver.cli, arcsolver.solve.solver, arcsolver.solve.shards; print(arcsolver.__file__)"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            cwd=target,
            env={**os.environ, "PYTHONPATH": target},
        )
        lines = (done.stdout + done.stderr).strip().splitlines() or ["no output"]
        if done.returncode or not lines[-1].startswith(target):
            report.problems.append(f"{bundle / WHEELS}: the installed arcsolver does not import: {lines[-1]}")
        else:
            report.summary.append("import: arcsolver imports from the installed wheels")


def verify_checkpoint(bundle: Path, manifest: Manifest, report: CheckReport) -> None:
    import torch

    from arcsolver.engine.checkpoint import read_state
    from arcsolver.engine.pretrained import load_model

    try:
        model, cfg, ckpt_dir = load_model(bundle / CHECKPOINT, torch.device("cpu"))
        step = read_state(ckpt_dir).get("step")
    except ArcsolverError as e:
        report.problems.append(str(e))
        return
    if step != manifest.checkpoint.step:
        report.problems.append(f"{ckpt_dir / 'state.json'}: step {step}, the manifest says {manifest.checkpoint.step}")
    n_params = sum(p.numel() for p in model.parameters())
    report.summary.append(
        f"checkpoint: step {step} (from {manifest.checkpoint.name}), {n_params:,} parameters, "
        f"canvas {cfg.model.canvas}x{cfg.model.canvas}"
    )


def check_bundle(bundle: Path) -> CheckReport:
    """Everything wrong with a bundle (report.problems) and what was verified (report.summary)."""
    bundle = Path(bundle)
    report = CheckReport()
    try:
        manifest = read_manifest(bundle)
    except ArcsolverError as e:
        report.problems.append(str(e))
        return report
    total = sum(entry.size for entry in manifest.files)
    report.summary.append(
        f"bundle: arcsolver {manifest.arcsolver} for Python {manifest.python} ({manifest.platform}), "
        f"recipe {manifest.recipe}, {len(manifest.files)} files, {total / 1e6:.1f} MB"
    )
    problems = file_problems(bundle, manifest)
    report.problems += problems
    if not problems:
        report.summary.append("files: every size and SHA-256 matches the manifest, none unlisted")
    trial_install(bundle, manifest, report)
    verify_checkpoint(bundle, manifest, report)
    return report
