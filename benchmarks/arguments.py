"""The benchmark scripts' arguments, checked as the CLI's settings are: a number that is not one,
not finite or out of its bounds, or a lever that does not split into settings, is one line
`error: --OPTION VALUE: cause; fix` and exit status 2, before any work and without a traceback."""

from __future__ import annotations

import argparse
import math
import re
import shlex
import sys


class Parser(argparse.ArgumentParser):
    """argparse, its errors in one line without the usage block (--help still shows it)."""

    def error(self, message: str):
        # "argument --seeds: 0: ..." -> "--seeds 0: ...", as the CLI names an option and its value
        sys.stderr.write("error: " + re.sub(r"^argument (\S+): ", r"\1 ", message) + "\n")
        sys.exit(2)


def _bounds(low, high) -> str:
    return " to ".join(str(b) if isinstance(b, int) else f"{b:g}" for b in (low, high))


def whole(low: int, high: int):
    """The argparse type of a whole number from low to high."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"\s*[+-]?[0-9]{1,30}\s*", text, re.ASCII):
            raise argparse.ArgumentTypeError(f"{text}: not a whole number; give one from {_bounds(low, high)}")
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text}: out of bounds; give a whole number from {_bounds(low, high)}")
        return value

    return parse


def number(low: float, high: float):
    """The argparse type of a finite number from low to high."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text}: not a number; give one from {_bounds(low, high)}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text}: not finite; give a number from {_bounds(low, high)}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text}: out of bounds; give a number from {_bounds(low, high)}")
        return value

    return parse


def settings(text: str) -> str:
    """The argparse type of a lever: --set settings separated by spaces, quoted as a shell would
    (model.mixer="mlp" data.layout="fixed"); at least one, each KEY=VALUE."""
    try:
        parts = shlex.split(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text}: {str(e).lower()}; close the quotes") from None
    if not parts or not all("=" in part for part in parts):
        raise argparse.ArgumentTypeError(f"{text}: not settings; give section.key=value, separated by spaces")
    return text
