"""The bundle's wheels: arcsolver, built from the source checkout, and every runtime dependency but
torch, for each target Python on manylinux x86_64, resolved and downloaded by pip.

pip judges environment markers by the interpreter that runs it, whatever --python-version says, so
a dependency only one target Python needs (say `tomli; python_version < "3.11"` of a dependency)
would be missed; each Python's resolution is therefore closed here, judging every marker for that
Python, and `kaggle check` verifies the same closure from the bundle alone.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from contextlib import suppress
from pathlib import Path

import arcsolver
from arcsolver.atomic import parent_death_signal
from arcsolver.errors import ArcsolverError

SCRATCH = ".build"  # the staging folder's temporary files (see scratch)
# Kaggle's image ships a CUDA build of torch; bundling another would add gigabytes. Its own
# dependencies (nvidia-*, triton, sympy, ...) never enter: torch is not resolved at all.
NOT_BUNDLED = {"torch"}
# Kaggle's image has run Python 3.10, 3.11 and 3.12 and is moving to 3.13: a bundle for all four
# installs whichever it runs.
IMAGE_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# Wheels for glibc up to 2.35 (Ubuntu 22.04, the base of Kaggle's Python image).
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 36))]


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
