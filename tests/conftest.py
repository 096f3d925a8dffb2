"""Shared fixtures: the real OSM test extracts in ../shared/data and the embedded demo network.

``HAVENMAP_SHARED_DATA`` (a directory) overrides where the real extracts are looked for, for a
checkout that does not sit beside ``shared/`` (a git worktree, say). With
``HAVENMAP_REQUIRE_DATA=1`` (set by ``.ci/run``) a missing extract fails the test instead of
skipping it, so CI cannot go green by skipping the real-street tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
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
def demo_out(tmp_path_factory):
    """`havenmap demo` run once through the real entry point (a fresh interpreter): (folder, process).

    Tests read this folder; none writes into it.
    """
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "havenmap.cli", "demo", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.fixture(scope="session")
def aguascalientes_drive():
    from havenmap.network import load_network

    return load_network(shared_file("aguascalientes.osm.bz2"), "drive")


@pytest.fixture(scope="session")
def demo_walk():
    from havenmap.network import load_network
    from havenmap.scenario import demo_dir

    return load_network(demo_dir() / "helsinki.osm.pbf", "walk")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env() -> dict[str, str]:
    """The environment for ``python -m havenmap.cli`` and Dask workers: this checkout's source first."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="session")
def dask_cluster():
    """A real cluster from the standard commands: ``dask scheduler`` and two ``dask worker --nthreads 1``
    processes on localhost, free ports; yields the scheduler address; the processes are ended afterwards."""
    pytest.importorskip("distributed")
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        found = shutil.which("dask")
        if found is None:
            pytest.skip("the `dask` command (dask[distributed]) is not installed")
        dask = Path(found)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"env": cli_env(), "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    procs = [subprocess.Popen(scheduler, **quiet)]
    try:
        for _ in range(2):
            worker = [dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]
            procs.append(subprocess.Popen(worker, **quiet))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            assert len(client.scheduler_info()["workers"]) == 2
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def pytest_sessionstart(session):
    """In CI (HAVENMAP_REQUIRE_BROWSER=1, set by .ci/run) a missing Chromium is an error, not a skip."""
    if os.environ.get("HAVENMAP_REQUIRE_BROWSER") and not Path("/usr/bin/chromium").exists():
        raise pytest.UsageError(
            "HAVENMAP_REQUIRE_BROWSER is set but /usr/bin/chromium is missing: apt-get install chromium"
        )
