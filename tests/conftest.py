"""Shared fixtures: the real OSM test extracts in ../shared/data and the embedded demo network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# beside the clone (CI); HAVENMAP_SHARED_DATA points elsewhere (e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("HAVENMAP_SHARED_DATA") or REPO.parent / "shared" / "data")


def shared_file(name: str) -> Path:
    """Path of a real OSM extract in ../shared/data, skipping the test where it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real OSM test extract {name} not found in {SHARED_DATA} (CI keeps ../shared beside the clone)")
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
    import os

    if os.environ.get("HAVENMAP_REQUIRE_BROWSER") and not Path("/usr/bin/chromium").exists():
        raise pytest.UsageError(
            "HAVENMAP_REQUIRE_BROWSER is set but /usr/bin/chromium is missing: apt-get install chromium"
        )
