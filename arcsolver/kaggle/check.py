"""Verify a bundle before uploading it: what the notebook will do on Kaggle, done here first.

Every file matches the manifest and none is unlisted; for each Python the bundle targets, the
arcsolver wheel allows that Python, pip resolves the manifest's requirements for it from the
wheels alone (torch is never asked for: arcsolver itself is installed without dependencies), and
every requirement of what pip picks, markers judged for that Python, is met; on this machine's
Python, if targeted, the wheels install into an empty folder and the bundled code imports from
it; the checkpoint loads. Each problem is one line naming the file.
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
    pinned,
    pip,
    requirement_tools,
    sha256,
    target_args,
    unmet_requirements,
    wheel_item,
    wheel_metadata,
)


@dataclass
class CheckReport:
    summary: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_manifest(bundle: Path) -> Manifest:
    """The bundle's manifest, validated; raises ArcsolverError naming the file."""
    from arcsolver.inputs import read_json
    from arcsolver.recipes import validate

    path = bundle / MANIFEST
    if not bundle.is_dir():
        raise ArcsolverError(f"{bundle}: no such folder")
    if not path.is_file():
        raise ArcsolverError(
            f"{path}: missing; an unfinished bundle, or not one (build it with `arcsolver kaggle bundle`)"
        )
    manifest = validate(Manifest, read_json(path), str(path))
    if not manifest.pythons or set(manifest.requirements) != set(manifest.pythons):
        raise ArcsolverError(
            f"{path}: requirements for Python {', '.join(sorted(manifest.requirements)) or 'none'}, wheels for "
            f"{', '.join(manifest.pythons) or 'none'}; rebuild the bundle with `arcsolver kaggle bundle`"
        )
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


def offline_resolve(requirements: list[str], python_version: str, wheels: Path) -> list[dict]:
    """The wheels pip picks for requirements on the target Python from the bundle alone, as install
    items (see wheel_item). pip download, not an install's dry run: pip install judges Requires-Python
    by the interpreter that runs it, whatever --python-version says."""
    with tempfile.TemporaryDirectory(prefix="arcsolver-resolve-") as tmp:
        pip(
            ["download", "--quiet", "--no-index", "--find-links", str(wheels), "--dest", tmp]
            + [*target_args(python_version), *requirements],
            f"pip's resolution for Python {python_version}",
            offline_env(),
        )
        return [wheel_item(wheel) for wheel in sorted(Path(tmp).glob("*.whl"))]


def requires_python(wheels: Path, manifest: Manifest) -> str:
    """The Requires-Python of the bundle's arcsolver wheel ('' if it names none)."""
    found = sorted(wheels.glob(f"arcsolver-{manifest.arcsolver}-*.whl"))
    if not found:
        raise ArcsolverError(f"{wheels}: no arcsolver {manifest.arcsolver} wheel; rebuild the bundle")
    return wheel_metadata(found[0]).get("Requires-Python") or ""


def this_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def offline_resolution(bundle: Path, manifest: Manifest, python_version: str, report: CheckReport) -> None:
    """Resolve, from the wheels alone, what the notebook installs on python_version; a problem if it fails."""
    requirement_tools()  # packaging is there, or one line saying how to install it
    from packaging.specifiers import SpecifierSet

    wheels = bundle / WHEELS
    try:
        needs = requires_python(wheels, manifest)
        if not SpecifierSet(needs).contains(f"{python_version}.0"):
            raise ArcsolverError(f"arcsolver {manifest.arcsolver} needs Python {needs}, not {python_version}")
        items = offline_resolve(manifest.requirements[python_version], python_version, wheels)
    except ArcsolverError as e:
        report.problems.append(f"{wheels}: {e}")
        return
    unmet = unmet_requirements(items, python_version)
    for who, req in unmet:
        report.problems.append(f"{wheels}: Python {python_version}: {who} needs {req}, which the bundle lacks")
    if any(item["metadata"]["name"].lower() == "torch" for item in items):
        report.problems.append(
            f"{wheels}: Python {python_version}: holds torch, which must come from Kaggle's image (its CUDA build)"
        )
    elif not unmet:
        report.summary.append(
            f"Python {python_version}: clean offline install of arcsolver {manifest.arcsolver} and "
            f"{len(items)} packages ({', '.join(p.replace('==', ' ') for p in pinned(items))}), no torch"
        )


def trial_install(bundle: Path, manifest: Manifest, report: CheckReport) -> None:
    """Install the wheels offline into an empty folder, as the notebook does, and import from it."""
    python = this_python()
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
            *target_args(python),
        ]
        try:
            pip(
                [*install, "--no-deps", f"arcsolver=={manifest.arcsolver}"],
                "offline install of arcsolver",
                offline_env(),
            )
            pip([*install, *manifest.requirements[python]], "offline install of its requirements", offline_env())
        except ArcsolverError as e:
            report.problems.append(f"{bundle / WHEELS}: {e}")
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
            report.summary.append(f"import: on this Python ({python}) arcsolver imports from the installed wheels")


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
        f"bundle: arcsolver {manifest.arcsolver} for Python {', '.join(manifest.pythons)} ({manifest.platform}), "
        f"recipe {manifest.recipe}, {len(manifest.files)} files, {total / 1e6:.1f} MB"
    )
    problems = file_problems(bundle, manifest)
    report.problems += problems
    if not problems:
        report.summary.append("files: every size and SHA-256 matches the manifest, none unlisted")
    for python_version in manifest.pythons:
        offline_resolution(bundle, manifest, python_version, report)
    if this_python() in manifest.pythons:
        trial_install(bundle, manifest, report)
    else:
        report.summary.append(
            f"import: skipped (this is Python {this_python()}, the wheels are for {', '.join(manifest.pythons)})"
        )
    verify_checkpoint(bundle, manifest, report)
    return report
