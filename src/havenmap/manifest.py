"""Run manifests: what went into an output folder, what came out, and whether that still holds.

Every command that writes an output folder (``run``, ``demo``, ``threat``, ``coverage``,
``patrol``, ``patrol-check``, ``network --out``) ends by writing ``DIR/manifest.json`` with
:func:`write_manifest`; ``havenmap verify DIR`` (:func:`verify`) re-hashes the inputs and
outputs it lists and names every file that changed, went missing or is new.

Schema (top-level keys are stable: other tools, e.g. share bundles, rely on them)::

    {
      "manifest": 1,                          # schema version
      "havenmap": "0.1.0",
      "libraries": {"numpy": "2.1.0", ..., "python": "3.12.3"},
      "command": ["havenmap", "run", "scenario.toml", "--out", "out"],
      "scenario": {...},                      # the resolved parameters, every default filled in
      "inputs": {"<role>": {"path": "/abs/path", "size": 1234, "sha256": "...",
                             "modified": "2026-11-20T08:00:00Z", "rows": 50}},
      "outputs": {"<path relative to DIR>": {"size": 1234, "sha256": "..."}},
      "seeds": {"patrol": 0, "threat": 0},
      "warnings": ["..."],
      "timings": {"started": "...Z", "finished": "...Z", "total_s": 12.3, "steps": [...], ...}
    }

Roles are ``network``, ``defenders``, ``havens``, ``incidents``, ``bases``, ``targets``,
``candidates``, ``closures``, ``risk`` (and others a command reads, e.g. ``class_speeds``,
``plan``, ``tracks``). Several files in one role are listed as ``role``, ``role_2``,
``role_3``, ... in the order given. ``rows`` is the number of rows or features read (null
for a road network or where a command does not read the file as a table). ``modified`` is
the file's modification time (UTC), shown in the situation report as the input's date.

``timings`` is the only part that differs between two runs of the same inputs and
parameters: everything else, and every output file, is byte-identical. The manifest is
written owner-only (0600): its warnings may name defenders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _io
from .errors import InputError

__all__ = [
    "LIBRARIES",
    "MANIFEST",
    "Change",
    "InputFile",
    "RunRecord",
    "describe_input",
    "read_manifest",
    "sha256_file",
    "verify",
    "write_manifest",
]

#: The manifest's file name inside an output folder.
MANIFEST = "manifest.json"
#: Version of the manifest's layout.
SCHEMA_VERSION = 1
#: Distributions whose versions are recorded (those whose results or file formats reach outputs).
LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "geopandas",
    "shapely",
    "pyproj",
    "pyogrio",
    "networkx",
    "osmium",
    "contourpy",
    "esda",
    "libpysal",
    "pyvrp",
    "folium-offline",
    "matplotlib",
)
_TOP_KEYS = ("havenmap", "libraries", "command", "scenario", "inputs", "outputs", "seeds", "warnings", "timings")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class InputFile:
    """An input file of a run and how many rows (features) were read from it (None: not a table)."""

    path: Path
    rows: int | None = None


# ---------------------------------------------------------------------- hashing
def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, hex (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_input(path: str | os.PathLike[str], rows: int | None = None) -> dict[str, Any]:
    """``path`` (absolute, as given), ``size``, ``sha256``, ``modified`` (UTC) and ``rows`` of an input file."""
    target = Path(os.path.abspath(path))
    info = target.stat()
    return {
        "path": str(target),
        "size": int(info.st_size),
        "sha256": sha256_file(target),
        "modified": _utc(info.st_mtime),
        "rows": None if rows is None else int(rows),
    }


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _inputs(inputs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Role → input description; a list in one role becomes ``role``, ``role_2``, ..."""
    out: dict[str, dict[str, Any]] = {}
    for role, value in inputs.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(x for x in items if x is not None):
            name = role if i == 0 else f"{role}_{i + 1}"
            if isinstance(item, Mapping):  # described already (hashed before the run used it)
                out[name] = dict(item)
                continue
            spec = item if isinstance(item, InputFile) else InputFile(Path(item))
            out[name] = describe_input(spec.path, spec.rows)
    return out


def _outputs(folder: Path, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """The output files (default: every file under ``folder`` but the manifest), by POSIX path relative to it."""
    if names is None:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() != MANIFEST)
    else:
        files = sorted(folder / name for name in names)
    return {p.relative_to(folder).as_posix(): {"size": int(p.stat().st_size), "sha256": sha256_file(p)} for p in files}


def libraries() -> dict[str, str | None]:
    """Versions of :data:`LIBRARIES` (None where not installed) and of Python."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = sys.version.split()[0]
    return found


def _version() -> str:
    try:
        return importlib.metadata.version("havenmap")
    except importlib.metadata.PackageNotFoundError:  # a source checkout that is not installed
        return "unknown"


# ---------------------------------------------------------------------- writing and reading
def write_manifest(
    out_dir: str | os.PathLike[str],
    *,
    command: Sequence[str],
    scenario: Mapping[str, Any],
    inputs: Mapping[str, Any],
    seeds: Mapping[str, Any] | None = None,
    warnings: Sequence[str] = (),
    timings: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    private: bool = True,
) -> Path:
    """Write ``out_dir/manifest.json`` for the files now in ``out_dir`` (call it last).

    Parameters
    ----------
    out_dir
        The output folder (or the staging folder of :func:`havenmap._io.output_folder`):
        every file in it is listed as an output.
    command
        The command line (``["havenmap", "run", ...]``).
    scenario
        The resolved parameters (JSON-ready).
    inputs
        Role → path, :class:`InputFile`, a description from :func:`describe_input` or a
        list of them (see the module docstring).
    seeds, warnings, timings, extra
        Seeds used, warning texts of the run (in order), timings (the only non-deterministic
        part) and further top-level keys.
    outputs
        The output files, relative to ``out_dir``, when the folder also holds other files
        (default: every file in it).
    private
        Write it owner-only (default: a run's manifest names its input files); a share
        bundle's follows the umask.

    Returns
    -------
    pathlib.Path
        The manifest's path.
    """
    folder = Path(out_dir)
    data: dict[str, Any] = {
        "manifest": SCHEMA_VERSION,
        "havenmap": _version(),
        "libraries": libraries(),
        "command": [str(a) for a in command],
        "scenario": dict(scenario),
        "inputs": _inputs(inputs),
        "outputs": _outputs(folder, outputs),
        "seeds": dict(seeds or {}),
        "warnings": list(dict.fromkeys(str(w) for w in warnings)),
        "timings": dict(timings or {}),
    }
    for key, value in (extra or {}).items():
        data.setdefault(key, value)
    return _io.write_json(folder / MANIFEST, data, private=private)


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an output folder.

    Raises
    ------
    havenmap.errors.InputError
        One line: the folder is missing or not a folder, has no manifest, or the manifest
        is not one havenmap wrote.
    """
    folder = Path(out_dir)
    if not folder.is_dir():
        raise InputError(
            f"{folder}: {'is not a folder' if folder.exists() else 'no such folder'}; give a run's output folder"
        )
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder}: no {MANIFEST}; give a folder written by havenmap run (or another command)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable manifest ({' '.join(str(exc).split())})") from None
    missing = [k for k in _TOP_KEYS if not isinstance(data, dict) or k not in data]
    if missing:
        raise InputError(f"{path}: not a havenmap manifest (no {', '.join(missing)}); re-run the command")
    if not isinstance(data["inputs"], dict) or not isinstance(data["outputs"], dict):
        raise InputError(f"{path}: not a havenmap manifest (inputs and outputs must be tables); re-run the command")
    return data


# ---------------------------------------------------------------------- verifying
@dataclass(frozen=True)
class Change:
    """One difference between a folder and its manifest.

    Attributes
    ----------
    kind : str
        ``"changed"``, ``"missing"`` or ``"new"``.
    what : str
        ``"input"``, ``"output"`` or ``"file"`` (a new file the manifest does not list).
    path : str
        Inputs: the absolute path recorded; outputs and new files: relative to the folder.
    role : str or None
        The input's role (``defenders`` ...).
    detail : str
        Sizes and hashes, in words.
    """

    kind: str
    what: str
    path: str
    role: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        name = f"input {self.role} {self.path}" if self.what == "input" else f"{self.what} {self.path}"
        return f"{name}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


def verify(out_dir: str | os.PathLike[str]) -> list[Change]:
    """Re-hash the inputs and outputs an output folder's manifest lists; return what changed.

    Inputs first (in the manifest's order), then outputs and new files (sorted by path).
    An empty list means every input and output is byte for byte as recorded and the folder
    holds no other file.

    Raises
    ------
    havenmap.errors.InputError
        The folder has no readable manifest (see :func:`read_manifest`).
    """
    folder = Path(out_dir)
    data = read_manifest(folder)
    changes = [
        c for role, rec in data["inputs"].items() if (c := _check(Path(str(rec.get("path"))), rec, "input", role))
    ]
    listed = {str(rel) for rel in data["outputs"]}
    for rel in sorted(listed):
        change = _check(folder / rel, data["outputs"][rel], "output", None, rel)
        if change is not None:
            changes.append(change)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST and rel not in listed:
            changes.append(Change("new", "file", rel, None, "not in the manifest"))
    return changes


def _check(path: Path, rec: Mapping[str, Any], what: str, role: str | None, shown: str | None = None) -> Change | None:
    shown = shown or str(path)
    if not path.is_file():
        return Change("missing", what, shown, role)
    size = path.stat().st_size
    digest = sha256_file(path)
    if digest == rec.get("sha256"):
        return None
    before = rec.get("size")
    sizes = f"{before:,} → {size:,} bytes" if isinstance(before, int) and before != size else f"{size:,} bytes"
    return Change("changed", what, shown, role, f"sha256 {digest[:12]}… was {str(rec.get('sha256'))[:12]}…; {sizes}")


# ---------------------------------------------------------------------- recording a run
Step = Callable[[str], contextlib.AbstractContextManager[Any]]


@dataclass
class RunRecord:
    """Warnings and step timings of one run, for its manifest.

    ``capture()`` records every warning of the run (each text once, in order) while still
    showing it as before; ``timed(step)`` wraps a progress-step factory so each step's
    duration is recorded. :meth:`timings` gives the manifest's ``timings``.
    """

    warnings: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    _clock: float = field(default_factory=time.perf_counter)

    @contextlib.contextmanager
    def capture(self) -> Iterator[RunRecord]:
        """Record the run's warnings (UserWarnings always, so a second run in one process sees them too)."""
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            shown = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                text = str(message)
                if text not in self.warnings:
                    self.warnings.append(text)
                shown(message, category, filename, lineno, file, line)

            warnings.showwarning = show
            yield self

    def timed(self, step: Step) -> Step:
        """A step factory like ``step`` that also records how long each step took."""

        @contextlib.contextmanager
        def run(message: str) -> Iterator[None]:
            start = time.perf_counter()
            with step(message):
                yield
            self.steps.append({"step": message, "seconds": round(time.perf_counter() - start, 3)})

        return run

    def timings(self, **extra: Any) -> dict[str, Any]:
        """``started``, ``finished`` (UTC), ``total_s``, ``steps`` and ``extra`` (e.g. solver times)."""
        return {
            "started": _utc(self.started),
            "finished": _utc(time.time()),
            "total_s": round(time.perf_counter() - self._clock, 3),
            "steps": list(self.steps),
            **extra,
        }
