"""Verify a bundle before uploading it: what the notebook will do on Kaggle, done here first.

First, before anything from the bundle is installed, imported or unpacked: every file the manifest
lists is a regular file inside the bundle of its size and SHA-256, none is unlisted (but the Kaggle
CLI's dataset-metadata.json) and no link
leads out of the bundle; the first that is not stops the check in one line naming it. Then, for
each Python the bundle targets, the
arcsolver wheel allows that Python, pip resolves the manifest's requirements for it from the
wheels alone (torch is never asked for: arcsolver itself is installed without dependencies), and
every requirement of what pip picks, markers judged for that Python, is met; on this machine's
Python, if targeted, the wheels install into an empty folder and the bundled code imports from
it; every checkpoint loads. Each problem of these is one line naming the file. Last, the solve's
plan on Kaggle's 4 L4s, priced for those checkpoints.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from arcsolver.errors import ArcsolverError
from arcsolver.kaggle.manifest import MANIFEST, RECIPE, WHEELS, Manifest, checkpoint_folder, sha256
from arcsolver.kaggle.wheels import (
    offline_env,
    pinned,
    pip,
    requirement_tools,
    target_args,
    unmet_requirements,
    wheel_item,
    wheel_metadata,
)
from arcsolver.reader import check_regular_file

# The Kaggle CLI's description of a dataset, which `kaggle datasets init -p BUNDLE` writes into the
# folder and its upload never sends: the one file beside the bundle's own that the check allows.
KAGGLE_METADATA = "dataset-metadata.json"


@dataclass
class CheckReport:
    summary: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_manifest(bundle: Path) -> Manifest:
    """The bundle's manifest, validated; raises ArcsolverError naming the file."""
    from arcsolver.reader import read_json
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
    for index, info in enumerate(manifest.checkpoints()):
        if info.folder != checkpoint_folder(index):  # the notebook passes exactly these folders
            raise ArcsolverError(
                f"{path}: names checkpoint {index + 1}'s folder {info.folder!r}, not {checkpoint_folder(index)!r}; "
                "rebuild the bundle with `arcsolver kaggle bundle`"
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


def verify_files(bundle: Path, manifest: Manifest) -> None:
    """Every file the manifest lists is a regular file inside the bundle of its size and SHA-256,
    and every file or link in the bundle is listed and stays inside it; an ArcsolverError naming
    the first that is not. Nothing from the bundle is installed, imported or unpacked before this."""
    root = Path(os.path.realpath(bundle))
    rebuild = "rebuild the bundle with `arcsolver kaggle bundle`"

    def inside(path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return real == root or root in real.parents

    listed = {entry.path for entry in manifest.files}
    for entry in manifest.files:
        path = bundle / entry.path
        if not os.path.lexists(path):
            raise ArcsolverError(f"{path}: listed in the manifest but missing; {rebuild}")
        if not inside(path):
            raise ArcsolverError(f"{path}: a link leading outside the bundle; {rebuild}")
        size = check_regular_file(path, ArcsolverError).st_size
        if size != entry.size:
            raise ArcsolverError(f"{path}: {size} bytes, the manifest says {entry.size}; {rebuild}")
        if sha256(path) != entry.sha256:
            raise ArcsolverError(f"{path}: SHA-256 differs from the manifest (the file was changed); {rebuild}")
    for folder, dirs, files in os.walk(bundle):  # links are listed, not followed
        for name in sorted(dirs) + sorted(files):
            path = Path(folder) / name
            if path.is_symlink() and not inside(path):
                raise ArcsolverError(f"{path}: a link leading outside the bundle; {rebuild}")
            rel = path.relative_to(bundle).as_posix()
            if name in files and rel not in (MANIFEST, KAGGLE_METADATA) and rel not in listed:
                raise ArcsolverError(f"{path}: not listed in the manifest; remove it, or {rebuild}")


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


def verify_checkpoints(bundle: Path, manifest: Manifest, report: CheckReport) -> None:
    """Every checkpoint of the bundle loads, at the step the manifest gives it."""
    import torch

    from arcsolver.engine.checkpoint import read_state
    from arcsolver.engine.pretrained import load_model

    infos = manifest.checkpoints()
    for info in infos:
        try:
            model, cfg, ckpt_dir = load_model(bundle / info.folder, torch.device("cpu"))
            step = read_state(ckpt_dir).get("step")
        except ArcsolverError as e:
            report.problems.append(str(e))
            continue
        if step != info.step:
            report.problems.append(f"{ckpt_dir / 'state.json'}: step {step}, the manifest says {info.step}")
        n_params = sum(p.numel() for p in model.parameters())
        report.summary.append(
            f"{info.folder}: step {step} (from {info.name}), {n_params:,} parameters, "
            f"canvas {cfg.model.canvas}x{cfg.model.canvas}"
            + (f"; one of an ensemble of {len(infos)}, voting together" if len(infos) > 1 else "")
        )


def plan_on_kaggle(bundle: Path, manifest: Manifest, report: CheckReport) -> None:
    """The solve's plan on Kaggle's 4 L4s (solve/plan.py), for the bundle's recipe and priced for
    its own checkpoints (check_bundle asks for it once every checkpoint has loaded)."""
    from arcsolver.config import SolveConfig
    from arcsolver.recipes import load_recipe
    from arcsolver.solve.plan import checkpoints_to_plan, solve_plan

    infos = manifest.checkpoints()
    try:
        cfg = load_recipe(SolveConfig, "submit", str(bundle / RECIPE))
        planned = checkpoints_to_plan([bundle / info.folder for info in infos], [info.folder for info in infos])
    except ArcsolverError as e:
        report.problems.append(str(e))
        return
    report.summary += [f"plan: {line}" for line in solve_plan(cfg, planned)]


def check_bundle(bundle: Path) -> CheckReport:
    """What was verified (report.summary) and what is wrong (report.problems) with a bundle. The
    manifest and every file are verified first: a mismatch there raises ArcsolverError, before
    anything from the bundle is installed, imported or unpacked."""
    bundle = Path(bundle)
    report = CheckReport()
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    total = sum(entry.size for entry in manifest.files)
    report.summary.append(
        f"bundle: arcsolver {manifest.arcsolver} for Python {', '.join(manifest.pythons)} ({manifest.platform}), "
        f"recipe {manifest.recipe}, {len(manifest.files)} files, {total / 1e6:.1f} MB"
    )
    report.summary.append("files: every size and SHA-256 matches the manifest, none unlisted, no link out")
    for python_version in manifest.pythons:
        offline_resolution(bundle, manifest, python_version, report)
    if this_python() in manifest.pythons:
        trial_install(bundle, manifest, report)
    else:
        report.summary.append(
            f"import: skipped (this is Python {this_python()}, the wheels are for {', '.join(manifest.pythons)})"
        )
    before = len(report.problems)
    verify_checkpoints(bundle, manifest, report)
    if len(report.problems) == before:  # every checkpoint loaded
        plan_on_kaggle(bundle, manifest, report)
    return report
