"""The command line's consoles and its one rule for user errors, shared by every sub-command."""

from __future__ import annotations

import functools
import re

import typer
from rich.console import Console
from rich.markup import escape

from arcsolver.errors import ArcsolverError

console = Console()
err_console = Console(stderr=True)

# Characters that would break a message out of its line or drive the terminal (ESC sequences).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """User text made safe to print as one line: control characters shown as escapes (\\n, \\x1b)
    and rich markup escaped, so a task id like `[/x]` or `a<newline>b` prints as written."""
    return escape(_CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text))


def user_errors(fn):
    """Print errors the user can cause as one line and exit 1, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ArcsolverError as e:
            err_console.print(f"[bold red]error:[/] {one_line(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper
