"""CI cannot go green by skipping: with HAVENMAP_REQUIRE_DATA set, missing real test data is a failure."""

from __future__ import annotations

import pytest

from . import conftest


def test_missing_shared_data_fails_when_required_and_skips_otherwise(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "SHARED_DATA", tmp_path)
    monkeypatch.setenv("HAVENMAP_REQUIRE_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match=r"aguascalientes\.osm\.bz2 not found .*HAVENMAP_REQUIRE_DATA"):
        conftest.shared_file("aguascalientes.osm.bz2")
    for off in ("", "0"):
        monkeypatch.setenv("HAVENMAP_REQUIRE_DATA", off)
        with pytest.raises(pytest.skip.Exception, match="not found"):
            conftest.shared_file("aguascalientes.osm.bz2")


def test_ci_requires_the_shared_data():
    run = (conftest.REPO / ".ci" / "run").read_text()
    assert "export HAVENMAP_REQUIRE_DATA=1" in run
    assert run.index("HAVENMAP_REQUIRE_DATA") < run.index("pytest")
