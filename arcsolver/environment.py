"""Settings read from environment variables, checked as a recipe's settings are: a value that is
not a number, not finite or out of its bounds is one line naming the variable and the fix, never
an overflow or a crash further on."""

from __future__ import annotations

import math
import os
import re

from arcsolver.errors import ConfigError


def _raw(name: str) -> str | None:
    """The variable's value, stripped; None where it is unset or empty."""
    return os.environ.get(name, "").strip() or None


def _refused(name: str, raw: str, cause: str, low, high, unit: str) -> ConfigError:
    bounds = " to ".join(str(b) if isinstance(b, int) else f"{b:g}" for b in (low, high))
    return ConfigError(f"{name}: {raw!r} is {cause}; set it to {unit} from {bounds}, or unset it")


def env_number(name: str, default: float, low: float, high: float, unit: str) -> float:
    """The variable `name` as a finite number from low to high (default where it is unset)."""
    raw = _raw(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _refused(name, raw, "not a number", low, high, unit) from None
    if not math.isfinite(value):
        raise _refused(name, raw, "not a finite number", low, high, unit)
    if not low <= value <= high:
        raise _refused(name, raw, "out of bounds", low, high, unit)
    return value


def env_integer(name: str, default: int | None, low: int, high: int, unit: str) -> int | None:
    """The variable `name` as a whole number from low to high (default where it is unset)."""
    raw = _raw(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]{1,30}", raw, re.ASCII):  # no 1e400, no digits of other scripts
        raise _refused(name, raw, "not a whole number", low, high, unit)
    value = int(raw)
    if not low <= value <= high:
        raise _refused(name, raw, "out of bounds", low, high, unit)
    return value
