"""`arcsolver import-reference`: a checkpoint of the TRM reference code as an arcsolver run."""

from __future__ import annotations

from pathlib import Path

import typer

from arcsolver.console import console, one_line, user_errors


@user_errors
def import_reference(
    checkpoint: Path = typer.Argument(
        ...,
        metavar="CHECKPOINT",
        help="The reference's checkpoint file (step_<N>, saved by its pretrain.py) or its directory.",
    ),
    out: Path = typer.Option(..., "--out", help="The run directory to write (must not exist, or be empty)."),
    identifiers: Path = typer.Option(
        None,
        help="The identifiers.json of the reference data set the checkpoint was trained on: names each "
        "puzzle-table row's task version, so that solve answers those tasks with their trained rows.",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Set what the checkpoint does not say: --set model.n_latent_steps=6 (repeatable)."
    ),
) -> None:
    """Convert a TRM checkpoint trained with the reference code into a run directory that solve,
    evaluate and kaggle bundle take. Settings come from the all_config.yaml beside the checkpoint
    where there is one, else from the weights' shapes and the reference's ARC recipe."""
    from arcsolver.cli.solve import output_lock
    from arcsolver.engine.reference_checkpoint import CONFIG_FILE
    from arcsolver.engine.reference_checkpoint import import_reference as convert
    from arcsolver.inputs import Inputs, refuse_output_dir

    # A checkpoint given as its folder is read whole (its newest step_<N> file is looked for there).
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    inputs = Inputs().file("reference checkpoint", checkpoint).file("identifiers file", identifiers)
    inputs.file("settings file", folder / CONFIG_FILE)
    if checkpoint.is_dir():
        inputs.directory("reference checkpoint's folder", checkpoint)
    refuse_output_dir("--out", out, inputs)
    with output_lock(out):  # a second import into the same --out is refused, and a read-only folder named
        imported = convert(checkpoint, out, identifiers, set_)
    m = imported.config.model
    say = lambda text: console.print(one_line(text), highlight=False, soft_wrap=True)  # noqa: E731
    source = (
        f"settings from {imported.settings_file}" if imported.settings_file else "settings from the weights' shapes"
    )
    say(
        f"{source}: hidden {m.hidden_size}, {m.n_layers} layers, expansion {m.expansion:g}, {m.n_heads} heads, "
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
