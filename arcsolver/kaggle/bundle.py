"""Build the bundle a competitor uploads as a Kaggle dataset.

wheels/        arcsolver and every runtime dependency but torch, for each target Python (3.10 to
               3.13 by default: whichever Kaggle's image runs) on manylinux x86_64
checkpoint/    model.safetensors, ema.safetensors, state.json of one checkpoint (solving needs
               neither the optimiser moments nor the training carry), its puzzle table slimmed:
               new tasks only ever read the mean of its rows, so by default the table keeps the
               blank row and that mean; `--keep-rows` also keeps the trained rows of some tasks
               (puzzles.txt names them, puzzle_mean.safetensors holds the whole table's mean)
checkpoint-2/  the same of an ensemble's second checkpoint (with several --checkpoint), and so on:
...            the notebook's solve passes every one, and all their answers go into one vote
recipe.toml    the submit recipe
manifest.json  versions, each checkpoint's step, the requirements to install on each Python, and
               every file's size and SHA-256; written last, so a folder without it is an unfinished
               bundle

pip judges environment markers by the interpreter that runs it, whatever --python-version says, so
a dependency only one target Python needs (say `tomli; python_version < "3.11"` of a dependency)
would be missed; each Python's resolution is therefore closed here, judging every marker for that
Python, and `kaggle check` verifies the same closure from the bundle alone.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

import arcsolver
from arcsolver.atomic import atomic_write_text, parent_death_signal, signals_raised, staged_folder
from arcsolver.errors import ArcsolverError, CheckpointError
from arcsolver.inputs import check_regular_file, read_text, refuse_foreign_dir
from arcsolver.locks import Lock

MANIFEST = "manifest.json"
WHEELS = "wheels"
CHECKPOINT = "checkpoint"
SCRATCH = ".build"  # the staging folder's temporary files (see scratch)
RECIPE = "recipe.toml"
CHECKPOINT_FILES = ("model.safetensors", "ema.safetensors", "state.json", "puzzles.txt", "puzzle_mean.safetensors")
# Kaggle's image ships a CUDA build of torch; bundling another would add gigabytes. Its own
# dependencies (nvidia-*, triton, sympy, ...) never enter: torch is not resolved at all.
NOT_BUNDLED = {"torch"}
# Kaggle's image has run Python 3.10, 3.11 and 3.12 and is moving to 3.13: a bundle for all four
# installs whichever it runs.
IMAGE_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# Wheels for glibc up to 2.35 (Ubuntu 22.04, the base of Kaggle's Python image).
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 36))]


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


def pip(args: list[str], what: str, env: dict | None = None, tmp: Path | None = None) -> str:
    """Run pip with this interpreter; a failure becomes one line: pip's own last line. pip dies
    with this process, and what it starts with it where this process stops it (Ctrl-C, SIGTERM);
    with tmp, pip's temporary files (its builds, its unpacked downloads) go there, not to $TMPDIR."""
    env = dict(os.environ if env is None else env)
    if tmp is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmp)
    command = [sys.executable, "-m", "pip", *args]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, stopped whole below
        preexec_fn=parent_death_signal(),
    ) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:
            with suppress(ProcessLookupError):  # ended already
                os.killpg(process.pid, signal.SIGKILL)
            raise
    if process.returncode:
        lines = [line.strip() for line in (stdout + "\n" + stderr).splitlines() if line.strip()]
        raise ArcsolverError(f"{what} failed: {lines[-1] if lines else f'pip exited with {process.returncode}'}")
    return stdout


def target_args(python_version: str) -> list[str]:
    """pip options that pick wheels for the target Python on manylinux x86_64, whatever runs pip."""
    abi = "cp" + python_version.replace(".", "")
    platforms = [x for p in PLATFORMS for x in ("--platform", p)]
    return [
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--abi",
        abi,
        *platforms,
    ]


def offline_env() -> dict:
    """The environment for a pip that may use nothing but the bundle: no configured indexes or links."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def source_tree() -> Path:
    """The project directory the imported arcsolver package lives in (a wheel is built from it)."""
    root = Path(arcsolver.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.exists() or 'name = "arcsolver"' not in pyproject.read_text(encoding="utf-8"):
        raise ArcsolverError(
            f"arcsolver is imported from {root}, not a source checkout: run the bundle from a clone of the project"
        )
    return root


def scratch(wheel_dir: Path) -> Path:
    """The folder beside wheel_dir (in the bundle's staging folder) for the builds' and pip's
    temporary files: a killed bundle leaves none in $TMPDIR, and the next bundle removes them with
    its staging folder. Removed before the manifest is written."""
    return wheel_dir.parent / SCRATCH


def build_wheel(source: Path, wheel_dir: Path) -> Path:
    """The arcsolver wheel, built from a copy of the project so the checkout gains no build files."""
    scratch(wheel_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="arcsolver-wheel-", dir=scratch(wheel_dir)) as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for path in source.iterdir():
            if path.is_file() and (
                path.suffix in (".toml", ".cfg", ".in", ".md") or path.name in ("setup.py", "LICENSE")
            ):
                shutil.copy2(path, copy / path.name)
        shutil.copytree(source / "arcsolver", copy / "arcsolver", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        pip(
            ["wheel", "--no-deps", "--quiet", "--wheel-dir", str(Path(tmp) / "out"), str(copy)],
            "pip wheel (building arcsolver)",
            tmp=scratch(wheel_dir),
        )
        built = list((Path(tmp) / "out").glob("arcsolver-*.whl"))
        if len(built) != 1:
            raise ArcsolverError(f"pip wheel built {len(built)} arcsolver wheels from {source}, expected one")
        wheel_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.move(str(built[0]), wheel_dir / built[0].name))


def wheel_metadata(wheel: Path):
    """The METADATA of a wheel, as an email message (Name, Version, Requires-Dist, ...)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.HeaderParser().parsestr(zf.read(name).decode("utf-8"))


def requirement_tools():
    """packaging's Requirement and canonicalize_name (building and checking a bundle need them)."""
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:
        raise ArcsolverError(
            "building or checking a bundle needs the 'packaging' package: pip install packaging"
        ) from None
    return Requirement, canonicalize_name


def marker_environment(python_version: str) -> dict[str, str]:
    """The values environment markers are judged by on Kaggle's image running python_version."""
    return {
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "extra": "",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }


def runtime_requirements(metadata, python_version: str) -> list[str]:
    """A wheel's Requires-Dist for the target Python on Linux: extras and torch left out, markers resolved."""
    Requirement, canonicalize_name = requirement_tools()
    target = marker_environment(python_version)
    kept = []
    for line in metadata.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if canonicalize_name(req.name) in NOT_BUNDLED or (req.marker and not req.marker.evaluate(target)):
            continue
        req.marker = None
        kept.append(str(req))
    return kept


def unmet_requirements(items: list[dict], python_version: str) -> list[tuple[str, str]]:
    """The requirements of a resolution's packages, markers judged for the target Python, that no
    package of the resolution meets (those pip missed by judging markers for its own Python), as
    (the package that needs it, the requirement) pairs."""
    Requirement, canonicalize_name = requirement_tools()
    target = marker_environment(python_version)
    versions = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in items}
    unmet = []
    for item in items:
        for line in item["metadata"].get("requires_dist") or []:
            req = Requirement(line)
            name = canonicalize_name(req.name)
            if name in NOT_BUNDLED or (req.marker and not req.marker.evaluate(target)):
                continue
            if name not in versions or not req.specifier.contains(versions[name], prereleases=True):
                req.marker = None
                unmet.append((f"{item['metadata']['name']} {item['metadata']['version']}", str(req)))
    return unmet


def pinned(items: list[dict]) -> list[str]:
    """A resolution as sorted name==version lines."""
    return sorted((f"{item['metadata']['name']}=={item['metadata']['version']}" for item in items), key=str.lower)


def wheel_item(wheel: Path) -> dict:
    """A wheel's name, version and Requires-Dist, shaped as an install item of pip's report."""
    metadata = wheel_metadata(wheel)
    requires = metadata.get_all("Requires-Dist") or []
    return {"metadata": {"name": metadata["Name"], "version": metadata["Version"], "requires_dist": requires}}


def download_dependencies(requirements: list[str], python_version: str, wheel_dir: Path) -> list[dict]:
    """Download into wheel_dir every wheel the requirements need on the target Python; returns them as
    install items (see wheel_item)."""
    _, canonicalize_name = requirement_tools()
    wanted = list(requirements)
    scratch(wheel_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="arcsolver-wheels-", dir=scratch(wheel_dir)) as tmp:
        for round_ in range(5):  # each round adds what the last one missed; real chains are one or two deep
            dest = Path(tmp) / str(round_)  # afresh: an added requirement may change other versions
            pip(
                ["download", "--quiet", "--dest", str(dest), *target_args(python_version), *wanted],
                f"pip download (the dependencies for Python {python_version})",
                tmp=scratch(wheel_dir),
            )
            wheels = sorted(dest.glob("*.whl"))
            items = [wheel_item(wheel) for wheel in wheels]
            unmet = unmet_requirements(items, python_version)
            if not unmet:
                break
            wanted += [req for _, req in unmet]
        else:
            raise ArcsolverError(
                f"the dependencies for Python {python_version} do not resolve: "
                + "; ".join(f"{who} needs {req}" for who, req in unmet)
            )
        pulled = [wheel.name for wheel in wheels if canonicalize_name(wheel.name.split("-")[0]) in NOT_BUNDLED]
        if pulled:
            raise ArcsolverError(
                f"a dependency pulled {', '.join(pulled)} into the bundle for Python {python_version}; "
                "it must come from Kaggle's image"
            )
        for wheel in wheels:  # a pure-Python wheel may already be there for another Python
            if not (wheel_dir / wheel.name).exists():
                shutil.move(str(wheel), wheel_dir / wheel.name)
    return items


def resolve_checkpoint(path: str | Path) -> tuple[Path, int]:
    """The checkpoint directory for path (validated by loading it on the CPU) and its step."""
    import torch

    from arcsolver.engine.checkpoint import find_checkpoint, read_state
    from arcsolver.engine.pretrained import load_model

    if not Path(path).exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    ckpt_dir = find_checkpoint(path)
    load_model(ckpt_dir, torch.device("cpu"))
    return ckpt_dir, int(read_state(ckpt_dir).get("step", 0))


@dataclass
class Slimmed:
    rows: int  # the bundle's puzzle-table rows, the blank one included
    full_rows: int
    full_bytes: int  # the checkpoint's files as they were


def kept_rows(ckpt_dir: Path, keep_rows: list[str]) -> tuple[Path, list[str], list[int]]:
    """The rows of a checkpoint's puzzle table (numbered from 1, after the blank row) that keep_rows
    (task ids, or ["all"]) keeps, with the file naming the rows and its names; CheckpointError where
    it keeps none (a mistyped id, or tasks the checkpoint never trained on) or the names do not fit
    the table. Reads the names and the table's header only: cheap enough to check before any work."""
    from safetensors import safe_open

    from arcsolver.data.augment import split_augmented_id
    from arcsolver.engine.checkpoint import run_of
    from arcsolver.engine.pretrained import TABLE_KEY, VERSIONS_FILE

    # A converted checkpoint names its rows itself; a pretraining run's checkpoints share the
    # run's puzzles.txt.
    names_path, run_dir = ckpt_dir / VERSIONS_FILE, run_of(ckpt_dir)
    if not names_path.exists() and run_dir is not None:
        names_path = run_dir / VERSIONS_FILE
    names = read_text(names_path, CheckpointError).splitlines() if names_path.exists() else []
    with safe_open(str(ckpt_dir / "model.safetensors"), framework="pt") as f:
        full_rows = f.get_slice(TABLE_KEY).get_shape()[0]
    wanted = set(keep_rows)
    if names and len(names) != full_rows - 1:
        raise CheckpointError(
            f"{names_path}: names {len(names)} rows, the puzzle table of {ckpt_dir / 'model.safetensors'} "
            f"has {full_rows - 1}; bundle it without --keep-rows"
        )
    try:
        kept = [
            row for row, name in enumerate(names, start=1) if "all" in wanted or split_augmented_id(name)[0] in wanted
        ]
    except ValueError as e:
        raise CheckpointError(f"{names_path}: {e}; bundle it without --keep-rows") from None
    if not kept:
        shown = ", ".join(sorted(wanted)[:3]) + (f" and {len(wanted) - 3} more" if len(wanted) > 3 else "")
        raise CheckpointError(
            f"--keep-rows: no task of {shown} has a trained row in {names_path} "
            f"({len(names)} rows); give tasks it names, or all"
        )
    return names_path, names, kept


def copy_checkpoint(ckpt_dir: Path, dest: Path, keep_rows: list[str] | None = None) -> Slimmed:
    """Copy what solving reads of a checkpoint into dest, its puzzle table cut to the blank row and
    the mean of the trained rows, which is all a new task reads; keep_rows (task ids, or ["all"])
    keeps the trained rows of those of its named tasks (see kept_rows), with the mean in MEAN_FILE."""
    import torch
    from safetensors import safe_open

    from arcsolver.engine.checkpoint import save_tensors
    from arcsolver.engine.pretrained import MEAN_FILE, TABLE_KEY, VERSIONS_FILE, table_mean_rows

    dest.mkdir(parents=True)
    full_bytes = sum((ckpt_dir / n).stat().st_size for n in CHECKPOINT_FILES if (ckpt_dir / n).exists())
    for name in ("ema.safetensors", "state.json"):
        if (ckpt_dir / name).exists():
            check_regular_file(ckpt_dir / name, CheckpointError)  # a FIFO would block the copy
            shutil.copyfile(ckpt_dir / name, dest / name)  # not its mode: a checkpoint's may be private
    with safe_open(str(ckpt_dir / "model.safetensors"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != TABLE_KEY}
        table = f.get_slice(TABLE_KEY)
        full_rows = table.get_shape()[0]
        blank_and_mean = table_mean_rows(table)
        if keep_rows is None:
            tensors[TABLE_KEY] = blank_and_mean
        else:
            _, names, kept = kept_rows(ckpt_dir, keep_rows)
            tensors[TABLE_KEY] = torch.cat([table[0:1], *(table[row : row + 1] for row in kept)])
            (dest / VERSIONS_FILE).write_text("".join(names[row - 1] + "\n" for row in kept), encoding="utf-8")
            save_tensors({TABLE_KEY: blank_and_mean[1:]}, dest / MEAN_FILE)
    save_tensors(tensors, dest / "model.safetensors")
    return Slimmed(len(tensors[TABLE_KEY]), full_rows, full_bytes)


def write_manifest(root: Path, manifest: Manifest) -> None:
    atomic_write_text(root / MANIFEST, json.dumps(manifest.model_dump(mode="json"), indent=1) + "\n")


def file_entries(root: Path) -> list[FileEntry]:
    return [
        FileEntry(path=p.as_posix(), size=(root / p).stat().st_size, sha256=sha256(root / p))
        for p in bundle_files(root)
    ]


def refuse_occupied(out: Path) -> None:
    """A bundle goes into an absent or empty folder only: nothing there is ever written over. A
    folder of the user's is refused naming the files the bundle's would overwrite."""
    refuse_foreign_dir("--out", out, (MANIFEST, WHEELS, CHECKPOINT, RECIPE))
    if os.path.lexists(out) and (out.is_symlink() or not out.is_dir() or any(out.iterdir())):
        raise ArcsolverError(f"{out}: already exists and is not an empty folder; remove it or choose another --out")


def staging_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


@contextmanager
def staged(out: Path, say: Callable[[str], None]):
    """A fresh folder beside out to build the bundle in (the caller renames it into place), removed
    on every exit: an error, Ctrl-C, or SIGTERM, which raises SystemExit(143) while it is held.
    Those a killed build (SIGKILL) left are removed first, saying so (see staged_folder)."""
    with signals_raised(lambda signum: SystemExit(128 + signum)), ExitStack() as stack:
        try:
            staging = stack.enter_context(staged_folder(out, staging_prefix(out), say))
        except OSError as e:
            raise ArcsolverError(
                f"{out.parent}: cannot write in it ({e.strerror or e}); choose another --out"
            ) from None
        yield staging


def build_bundle(
    checkpoints: str | Path | list[str | Path],
    out: Path,
    recipe: str = "kaggle",
    python_versions: tuple[str, ...] = IMAGE_PYTHONS,
    keep_rows: list[str] | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> Manifest:
    """Write the bundle for a checkpoint (or a run's newest), or an ensemble's several, into out,
    which must be empty or absent, with wheels for each of python_versions; each puzzle table
    slimmed (see copy_checkpoint). Every input is checked before the first wheel is built; say
    tells of the unfinished bundles of killed builds removed."""
    from arcsolver.config import SolveConfig
    from arcsolver.recipes import load_recipe, recipe_path

    for version in python_versions:
        if not re.fullmatch(r"3\.\d+", version):
            raise ArcsolverError(f"--python-version {version!r}: expected major.minor, e.g. 3.12")
    pythons = sorted(set(python_versions), key=lambda v: int(v.split(".")[1]))
    if not pythons:
        raise ArcsolverError("no --python-version: name at least one Python the wheels are for, e.g. 3.12")
    out = Path(out)
    refuse_occupied(out)
    given = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)
    if not given:
        raise ArcsolverError("no --checkpoint: name the checkpoint or run directory to bundle")
    resolved = [resolve_checkpoint(path) for path in given]  # each validated before any work
    seen: dict[Path, str | Path] = {}
    for path, (ckpt_dir, _) in zip(given, resolved):
        if ckpt_dir.resolve() in seen:
            raise ArcsolverError(
                f"--checkpoint {path}: the same checkpoint as --checkpoint {seen[ckpt_dir.resolve()]} "
                f"({ckpt_dir}); an ensemble's checkpoints must differ"
            )
        seen[ckpt_dir.resolve()] = path
    if keep_rows is not None:  # a mistyped task id is named now, not after the wheels are built
        for ckpt_dir, _ in resolved:
            kept_rows(ckpt_dir, keep_rows)
    load_recipe(SolveConfig, "submit", recipe)  # a recipe that does not validate here would fail on Kaggle
    recipe_file = recipe_path("submit", recipe)
    source = source_tree()
    requirement_tools()  # building the bundle needs packaging

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArcsolverError(f"{out.parent}: cannot create it ({e.strerror or e}); choose another --out") from None
    # One bundle into out at a time: a second is refused in one line and touches nothing of the first's.
    with Lock(out.parent / f".{out.name}.lock", f"bundle {out}"), staged(out, say) as staging:
        refuse_occupied(out)  # written by another bundle since the first look
        metadata = wheel_metadata(build_wheel(source, staging / WHEELS))
        requirements = {version: runtime_requirements(metadata, version) for version in pythons}
        for version in pythons:
            download_dependencies(requirements[version], version, staging / WHEELS)
        infos = []
        for index, (ckpt_dir, step) in enumerate(resolved):
            folder = checkpoint_folder(index)
            slim = copy_checkpoint(ckpt_dir, staging / folder, keep_rows)
            infos.append(
                CheckpointInfo(
                    name=ckpt_dir.name,
                    folder=folder,
                    step=step,
                    table_rows=slim.rows,
                    full_table_rows=slim.full_rows,
                    full_bytes=slim.full_bytes,
                )
            )
        shutil.copyfile(recipe_file, staging / RECIPE)
        shutil.rmtree(scratch(staging / WHEELS), ignore_errors=True)
        manifest = Manifest(
            arcsolver=metadata["Version"],
            pythons=pythons,
            platform="manylinux x86_64",
            recipe=recipe_file.stem,
            checkpoint=infos[0],
            ensemble=infos[1:],
            requirements=requirements,
            files=file_entries(staging),
        )
        write_manifest(staging, manifest)
        os.replace(staging, out)  # out is absent or an empty folder, which rename replaces
    return manifest
