"""Shared fixtures: the real OSM test extracts in ../shared/data and the embedded demo network.

``HAVENMAP_SHARED_DATA`` (a directory) overrides where the real extracts are looked for, for a
checkout that does not sit beside ``shared/`` (a git worktree, say). With
``HAVENMAP_REQUIRE_DATA=1`` (set by ``.ci/run``) a missing extract fails the test instead of
skipping it, so CI cannot go green by skipping the real-street tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HAVENMAP_SHARED_DATA") or REPO.parent / "shared" / "data")


def _required(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() not in ("", "0", "false", "no")


def shared_file(name: str) -> Path:
    """Path of a real OSM extract in ../shared/data: a skip where it is absent, a failure when data is required."""
    path = SHARED_DATA / name
    if not path.exists():
        where = f"real OSM test extract {name} not found in {SHARED_DATA}"
        if _required("HAVENMAP_REQUIRE_DATA"):
            pytest.fail(
                f"{where}, and HAVENMAP_REQUIRE_DATA is set: put the shared test data beside the clone "
                "(../shared/data) or point HAVENMAP_SHARED_DATA at it",
                pytrace=False,
            )
        pytest.skip(f"{where} (CI keeps ../shared beside the clone)")
    return path


@pytest.fixture(scope="session")
def aguascalientes_drive():
    from havenmap.network import load_network

    return load_network(shared_file("aguascalientes.osm.bz2"), "drive")


@pytest.fixture(scope="session")
def demo_walk():
    from havenmap.network import load_network
    from havenmap.scenario import demo_dir

    return load_network(demo_dir() / "helsinki.osm.pbf", "walk")


def pytest_sessionstart(session):
    """In CI (HAVENMAP_REQUIRE_BROWSER=1, set by .ci/run) a missing Chromium is an error, not a skip."""
    if os.environ.get("HAVENMAP_REQUIRE_BROWSER") and not Path("/usr/bin/chromium").exists():
        raise pytest.UsageError(
            "HAVENMAP_REQUIRE_BROWSER is set but /usr/bin/chromium is missing: apt-get install chromium"
        )
