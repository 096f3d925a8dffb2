"""The notebooks in notebooks/ run top to bottom in a real Jupyter kernel (nbclient), on a copy in a temp folder.

Each notebook is copied to ``tmp_path`` and executed there (the kernel's working directory), with
this checkout's source first on the kernel's path and a per-cell timeout; the repository's
``notebooks/`` folder must be byte-for-byte unchanged afterwards. The committed notebooks carry
no outputs, and use only havenmap's public API.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from .conftest import REPO, cli_env

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

FOLDER = REPO / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
CELL_TIMEOUT_S = 120
#: Notebooks that must draw (matplotlib figures in their outputs).
WITH_PLOTS = {"coverage_and_n1", "danger_aware_routing", "threat_and_backtest", "haven_siting", "patrol_plans"}


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_promised_notebooks_are_there():
    assert {p.stem for p in NOTEBOOKS} >= WITH_PLOTS | {"quickstart"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_in_a_kernel_in_a_temp_folder(path, tmp_path, monkeypatch):
    before = _digest(FOLDER)
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    for key, value in cli_env().items():  # the kernel inherits this environment: this checkout's havenmap
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    if path.stem in WITH_PLOTS:
        assert any("image/png" in o.get("data", {}) for o in outputs), "no figure drawn"
    if path.stem == "quickstart":
        assert (tmp_path / "quickstart_map.html").exists()  # written where the kernel runs
    assert _digest(FOLDER) == before  # nothing written into the repository


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_stripped_titled_and_use_the_public_api(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# ")
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert cell["outputs"] == [] and cell["execution_count"] is None
        source = "".join(cell["source"])
        assert not re.search(r"havenmap\._|from \._|\bhm\._", source), source  # no private modules or names
        assert not re.search(r"\bdefenders\b[\w.\[\]\"' ]*\.plot\(", source), source  # no defender points drawn
