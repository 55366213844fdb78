"""`arcsolver import-reference`: a checkpoint of the TRM reference code as an arcsolver run."""

from __future__ import annotations

from pathlib import Path

import typer

from arcsolver.console import console, err_console, one_line, user_errors


@user_errors
def import_reference(
    checkpoint: str = typer.Argument(
        ...,
        metavar="CHECKPOINT",
        help="The reference's checkpoint file (step_<N>, saved by its pretrain.py) or its directory; or a file "
        "on the Hugging Face Hub, hf:OWNER/REPO/PATH (needs the hub extra), downloaded with the all_config.yaml "
        "beside it.",
    ),
    out: Path = typer.Option(..., "--out", help="The run directory to write (must not exist, or be empty)."),
    identifiers: str = typer.Option(
        None,
        help="Names each puzzle-table row's task version, so that solve answers those tasks with their trained "
        "rows: the identifiers.json of the reference data set the checkpoint was trained on, or that data set's "
        "name (arc1concept, arc2concept) to rebuild its rows from the bundled ARC sets and --concept.",
    ),
    concept: Path = typer.Option(
        None,
        help="ConceptARC, for --identifiers arc1concept|arc2concept: a clone of its repository, or a challenges "
        "file of its tasks (arc-agi_concept_challenges.json in the reference's kaggle/combined folder).",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Set what the checkpoint does not say: --set model.n_latent_steps=6 (repeatable)."
    ),
) -> None:
    """Convert a TRM checkpoint trained with the reference code into a run directory that solve,
    evaluate and kaggle bundle take. Settings come from the all_config.yaml beside the checkpoint
    where there is one, else from the weights' shapes and the reference's ARC recipe."""
    from arcsolver.atomic import Terminated
    from arcsolver.cli.run_dir import refuse_filled_run
    from arcsolver.cli.solve import output_lock
    from arcsolver.hub import download_reference, is_hub
    from arcsolver.inputs import Inputs, refuse_output_dir
    from arcsolver.reference.checkpoint import read_reference
    from arcsolver.reference.convert import write_reference
    from arcsolver.reference.names import DATASETS, dataset_subsets, reference_identifiers
    from arcsolver.reference.settings import CONFIG_FILE

    def refuse_out_over(source: Path) -> None:
        """--out must be none of the files the import reads, nor lie in a folder it reads whole."""
        folder = source if source.is_dir() else source.parent  # a folder: its newest step_<N> is looked for there
        inputs = Inputs().file("reference checkpoint", source).file("settings file", folder / CONFIG_FILE)
        if identifiers and identifiers not in DATASETS:
            inputs.file("identifiers file", Path(identifiers))
        if concept is not None:
            inputs.file("ConceptARC", concept)
            if concept.is_dir():
                inputs.directory("ConceptARC", concept)
        if source.is_dir():
            inputs.directory("reference checkpoint's folder", source)
        refuse_output_dir("--out", out, inputs)

    say = lambda text: console.print(one_line(text), highlight=False, soft_wrap=True)  # noqa: E731
    if not is_hub(checkpoint):
        refuse_out_over(Path(checkpoint))  # before any work
    refuse_filled_run("--out", out)  # before any work, the download included
    # Every input is checked before the rows are rebuilt, which takes minutes.
    subsets = dataset_subsets(identifiers, concept) if identifiers in DATASETS else None
    source = download_reference(checkpoint, CONFIG_FILE) if is_hub(checkpoint) else Path(checkpoint)
    if is_hub(checkpoint):
        refuse_out_over(source)  # the downloaded files in the Hub's cache
    try:
        with output_lock(out):  # a second import into the same --out is refused, and a read-only folder named
            reference = read_reference(source, out, set_)
            rows: Path | tuple[str, list[str]] | None = Path(identifiers) if identifiers else None
            if subsets is not None:
                say(f"rebuilding the rows of {identifiers} ({sum(map(len, subsets))} tasks, up to 1000 versions each)")
                rows = (identifiers, reference_identifiers(subsets))
            imported = write_reference(reference, out, rows, checkpoint if is_hub(checkpoint) else None, say)
    except Terminated:
        err_console.print(
            f"[bold red]error:[/] {one_line(str(out))}: stopped by SIGTERM before the run was complete; nothing was "
            "left there; run the command again",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(143) from None
    m = imported.config.model
    settings = (
        f"settings from {imported.settings_file}" if imported.settings_file else "settings from the weights' shapes"
    )
    say(
        f"{settings}: hidden {m.hidden_size}, {m.n_layers} layers, expansion {m.expansion:g}, {m.n_heads} heads, "
        f"T={m.n_recursions} n={m.n_latent_steps} N_sup={m.n_supervision}, prefix {m.puzzle_emb_len}, "
        f"{m.canvas}x{m.canvas} canvas ({m.positions}); puzzle table of {imported.rows - 1} task versions"
    )
    if imported.assumed:
        values = ", ".join(f"model.{k}={v}" for k, v in imported.assumed.items())
        say(
            f"assumed, as the reference's ARC recipe (no {'value in the settings file' if imported.settings_file else 'all_config.yaml beside the checkpoint'}): "
            f"{values}; if the run used others, convert again with --set, e.g. --set model.n_latent_steps=6"
        )
    if imported.named_rows:
        say(
            f"named each puzzle-table row in {imported.checkpoint / 'puzzles.txt'}: solve answers those tasks with "
            "the versions and rows they were trained with"
        )
    say(f"wrote {imported.checkpoint}")
    say(f"solve with: arcsolver solve CHALLENGES.json --checkpoint {imported.out} --out submission.json")
