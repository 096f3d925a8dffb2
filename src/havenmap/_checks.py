"""Checks of single option values (numbers with a range) and of parameter tables, shared by the library
and the command line.

The library functions check their parameters with these, and the CLI runs the same checks
when it parses the options, so a bad value fails with one line naming the option before
any file is read or any network is loaded.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import InputError


def number(
    value: Any,
    option: str,
    what: str = "a number",
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
    finite: bool = True,
) -> float:
    """``value`` as a float, or an :class:`~havenmap.errors.InputError` naming ``option``.

    Parameters
    ----------
    value
        The value to check (a number, or text that reads as one).
    option
        How the user named it: ``"--max-snap-m"`` on the command line, ``"max_snap_m"`` in Python.
    what
        What the value is, for the message: ``"a distance in metres"``.
    above, at_least, below, at_most
        Bounds (strict: ``above``/``below``; inclusive: ``at_least``/``at_most``).
    finite
        Refuse infinity (NaN is always refused).
    """
    rule = rule_text(above, at_least, below, at_most)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{option} {value!r}: not a number; give {what}{rule}") from None
    bad = math.isnan(x) or (finite and math.isinf(x))
    bad = bad or (above is not None and not x > above) or (at_least is not None and not x >= at_least)
    bad = bad or (below is not None and not x < below) or (at_most is not None and not x <= at_most)
    if bad:
        note = " (nan is not a number)" if math.isnan(x) else ""
        raise InputError(f"{option} {x:g}: give {what}{rule}{note}")
    return x


def rule_text(
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> str:
    """The bounds in words, with a leading space: ``" above 0 and at most 366"`` (empty without bounds)."""
    parts = []
    if above is not None:
        parts.append(f"above {above:g}")
    if at_least is not None:
        parts.append(f"{at_least:g} or more")
    if below is not None:
        parts.append(f"below {below:g}")
    if at_most is not None:
        parts.append(f"at most {at_most:g}")
    return (" " + " and ".join(parts)) if parts else ""


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML parameter file as a dict; a missing or unreadable file is one :class:`InputError` line."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: parameter file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None


def check_keys(cls: type, values: dict[str, Any], source: str) -> None:
    """Refuse keys of ``values`` that are not fields of the dataclass ``cls``, naming ``source``."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
