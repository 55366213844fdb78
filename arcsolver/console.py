"""The command line's consoles and its one rule for user errors, shared by every sub-command."""

from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.markup import escape

from arcsolver.errors import ArcsolverError

console = Console()
err_console = Console(stderr=True)


def user_errors(fn):
    """Print errors the user can cause as one line and exit 1, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ArcsolverError as e:
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper
