"""`arcsolver kaggle bundle`, `arcsolver kaggle upload` and `arcsolver kaggle check`."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from arcsolver.console import console, err_console, one_line, user_errors

kaggle_app = typer.Typer(
    help="The Kaggle submission: the dataset bundle the notebook installs from.", no_args_is_help=True
)


@kaggle_app.command("bundle")
@user_errors
def bundle(
    checkpoint: list[str] = typer.Option(
        ...,
        "--checkpoint",
        help="A checkpoint or run directory (then its newest checkpoint). Repeat it for an ensemble: the "
        "notebook's solve passes every one, and their answers vote together.",
    ),
    out: Path = typer.Option(
        ..., "--out", help="The folder to write (absent or empty); upload it as a Kaggle dataset."
    ),
    recipe: str = typer.Option("kaggle", help="A submit recipe file, or the name of a shipped one (submit/*.toml)."),
    python_versions: list[str] = typer.Option(
        [],
        "--python-version",
        help="A Python the wheels are for (repeatable); by default 3.10, 3.11, 3.12 and 3.13, whichever the "
        "Kaggle image runs.",
    ),
    keep_rows: list[str] = typer.Option(
        [],
        "--keep-rows",
        help="Keep the trained puzzle-table rows of these tasks (repeatable): 'all' the checkpoint names "
        "(puzzles.txt), a bundled set, a challenges file or a task id. By default the table keeps only the mean "
        "row, all that tasks the checkpoint never saw start from.",
    ),
) -> None:
    """Write the wheels, the checkpoint (or an ensemble's), the recipe and a manifest for the offline Kaggle notebook."""
    from arcsolver.engine.checkpoint import checkpoint_inputs
    from arcsolver.inputs import Inputs, refuse_output_dir
    from arcsolver.kaggle.bundle import build_bundle
    from arcsolver.kaggle.wheels import IMAGE_PYTHONS
    from arcsolver.recipes import recipe_path

    inputs = Inputs().file("recipe", recipe_path("submit", recipe))
    for given in checkpoint:
        checkpoint_inputs(inputs, given)
    refuse_output_dir("--out", out, inputs)
    manifest = build_bundle(
        checkpoint,
        out,
        recipe,
        tuple(python_versions) or IMAGE_PYTHONS,
        kept_task_ids(keep_rows) if keep_rows else None,
        say=lambda text: console.print(one_line(text), highlight=False, soft_wrap=True),
    )
    wheels = [f for f in manifest.files if f.path.startswith("wheels/")]
    total = sum(f.size for f in manifest.files)
    infos = manifest.checkpoints()

    def size_of(folder: str) -> float:
        return sum(f.size for f in manifest.files if f.path.startswith(f"{folder}/")) / 1e6

    steps = ", ".join(f"step {info.step} ({size_of(info.folder):.1f} MB)" for info in infos)
    console.print(
        f"wrote {one_line(str(out))}: arcsolver {manifest.arcsolver} and {len(wheels) - 1} dependency wheels for Python {', '.join(manifest.pythons)} "
        f"({sum(f.size for f in wheels) / 1e6:.1f} MB), "
        + (f"checkpoint {steps}" if len(infos) == 1 else f"an ensemble of {len(infos)} checkpoints: {steps}")
        + f", recipe {manifest.recipe}; {total / 1e6:.1f} MB in all",
        highlight=False,
        soft_wrap=True,
    )
    for info in infos:
        if info.full_bytes is None or info.full_table_rows is None or info.table_rows is None:
            continue
        console.print(
            f"{info.folder}: puzzle table: {info.full_table_rows - 1} trained rows -> {info.table_rows - 1} "
            f"({'the mean row' if info.table_rows == 2 and not keep_rows else 'the kept rows'}); checkpoint "
            f"{info.full_bytes / 1e6:.1f} MB -> {size_of(info.folder):.1f} MB",
            highlight=False,
            soft_wrap=True,
        )
    folder = shlex.quote(one_line(str(out)))
    console.print(
        f"check it with `arcsolver kaggle check {folder}`, then upload it as the dataset the notebook attaches "
        f"(arcsolver-bundle), its subfolders with it: `kaggle datasets create -p {folder} --dir-mode zip` after "
        f"`kaggle datasets init -p {folder}` (the Kaggle CLI's default, --dir-mode skip, leaves them out; see docs/kaggle.md)",
        highlight=False,
        soft_wrap=True,
    )


def kept_task_ids(values: list[str]) -> list[str]:
    """--keep-rows values as task ids ("all" kept as it is): tasks of a bundled set, a challenges
    file or a task directory, else the value itself as one task's id."""
    from arcsolver.data.loaders import BUNDLED, load_tasks

    ids = []
    for value in values:
        if value != "all" and (value in BUNDLED or Path(value).exists()):
            ids += [task.id for task in load_tasks(value)]
        else:
            ids.append(value)
    return ids


@kaggle_app.command("upload")
@user_errors
def upload(
    bundle_dir: Path = typer.Argument(..., metavar="DIR", help="A bundle written by `arcsolver kaggle bundle`."),
    dataset: str = typer.Option(
        ..., "--dataset", help="The Kaggle dataset, OWNER/SLUG (private; created, or given a new version)."
    ),
    notes: str = typer.Option("", "--notes", help="The new version's notes."),
) -> None:
    """Upload a bundle to a private Kaggle dataset through kagglehub, its subfolders kept (the Kaggle CLI's
    default drops them): every file verified first. Needs kagglehub and Kaggle credentials."""
    from arcsolver.kaggle.upload import MAX_TREE_FILES, upload_bundle

    sent = upload_bundle(bundle_dir, dataset, notes)
    how = (
        f"as one archive.zip (kagglehub packs a folder of more than {MAX_TREE_FILES} files; the notebook unpacks it)"
        if sent.packed
        else "as its tree"
    )
    console.print(
        one_line(
            f"uploaded {bundle_dir} to the Kaggle dataset {dataset}: {sent.files} files, {sent.size / 1e6:.1f} MB, "
            f"{how}; attach it to the notebook (Add Input), where Kaggle mounts it once it has processed the files"
        ),
        highlight=False,
        soft_wrap=True,
    )


@kaggle_app.command("check")
@user_errors
def check(
    bundle_dir: Path = typer.Argument(..., metavar="DIR", help="A bundle written by `arcsolver kaggle bundle`."),
) -> None:
    """Verify a bundle: sums and sizes, an offline install into an empty folder, the checkpoint loads."""
    from arcsolver.kaggle.check import check_bundle

    report = check_bundle(bundle_dir)
    for line in report.summary:
        console.print(one_line(line), highlight=False, soft_wrap=True)
    for problem in report.problems:
        err_console.print(f"[red]problem:[/] {one_line(problem)}", highlight=False, soft_wrap=True)
    if report.problems:
        n = len(report.problems)
        err_console.print(f"{one_line(str(bundle_dir))}: {n} problem{'s' * (n > 1)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"{one_line(str(bundle_dir))}: ready to upload", highlight=False, soft_wrap=True)
