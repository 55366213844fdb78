"""The `arcsolver` command line, one module per command group: data.py, pretrain.py (pretrain,
plan, report), solve.py (solve, evaluate), reference.py (import-reference), and
arcsolver/kaggle/cli.py; `settings` is here."""

from __future__ import annotations

import typer
from rich.table import Table

from arcsolver.cli.data import data_app
from arcsolver.cli.pretrain import plan_command, pretrain, report
from arcsolver.cli.reference import import_reference
from arcsolver.cli.solve import evaluate, solve
from arcsolver.console import console, one_line, user_errors
from arcsolver.kaggle.cli import kaggle_app

app = typer.Typer(help="ARC-AGI with the Tiny Recursive Model.", no_args_is_help=True, add_completion=False)
app.add_typer(data_app, name="data")
app.add_typer(kaggle_app, name="kaggle")
app.command()(pretrain)
app.command("plan")(plan_command)
app.command()(evaluate)
app.command()(solve)
app.command()(report)
app.command("import-reference")(import_reference)


@app.command()
@user_errors
def settings(
    stage: str = typer.Argument(
        ..., metavar="pretrain|submit", help="Which recipes: pretrain (pretrain/*.toml) or submit (submit/*.toml)."
    ),
    recipe: str = typer.Option(
        None, help="Show this recipe's values instead of the defaults (a file or a shipped name)."
    ),
) -> None:
    """List every setting a recipe or --set can change: section.key, value, type and meaning."""
    from arcsolver.recipes import load_recipe, recipe_path, setting_rows, stage_model

    model = stage_model(stage)
    config = load_recipe(model, stage, recipe) if recipe else model()
    title = f"{stage} settings: values of {recipe_path(stage, recipe)}" if recipe else f"{stage} settings: defaults"
    rows = setting_rows(config)
    columns = ("setting", "value", "type", "meaning")[: 4 if any(row[3] for row in rows) else 3]
    table = Table(title=one_line(title), title_justify="left")
    for col in columns:
        table.add_column(col, no_wrap=col == "setting", overflow="fold")
    for row in rows:
        table.add_row(*(one_line(cell) for cell in row[: len(columns)]))
    console.print(table)
    console.print(
        "change one with --set SECTION.KEY=VALUE (the value in TOML syntax), e.g. --set optim.lr=3e-4", highlight=False
    )


def main() -> None:  # pragma: no cover - the console-script entry point
    app()
