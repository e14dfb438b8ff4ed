"""The kill matrix (issue 20): every writer of ours, SIGKILLed at 5+ named points, leaves the old file or the new one,
never a torn one, never neither, and never touches a user's layer beside ours.

The points are the real writer's steps (core/io/files.crash_point: after the temporary file is created, mid-write,
written, before fsync, before the rename, after it; in a GeoPackage: staged layer, old layer dropped inside the
transaction, renamed, committed). The process is killed with SIGKILL there (GEOCLIP_KILL_AT), as an OOM killer or a
power cut would, and the target is then compared with the old bytes (or rows) and with a clean run's.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geoclip_qgis.shared.atomic import STALE_S

ROOT = Path(__file__).resolve().parents[1]

WRITE = r"""
import json, sys
from pathlib import Path
import numpy as np
kind, target, version = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
rows = [{"source": f"v{version}-{i}.jpg", "kind": "image", "rank": 1, "probability": 0.5, "lat": float(i),
         "lon": float(version), "gallery_index": i} for i in range(50 * version)]
if kind in ("csv", "geojson", "gpkg-new", "gpkg-layer"):
    from geoclip_qgis.core.io.results import DEFAULT_LAYER, TABLES, Output, write_output
    driver = {"csv": "CSV", "geojson": "GeoJSON"}.get(kind, "GPKG")
    write_output(Output(target, driver, DEFAULT_LAYER if driver == "GPKG" else None), TABLES["ranks"], rows)
elif kind in ("geotiff", "cog"):
    from geoclip_qgis.core.maps.raster import Grid, write_geotiff
    write_geotiff(target, Grid.over([0, 0, 40, 20], 0.5), np.full((40, 80), version, np.float32), cog=kind == "cog")
elif kind == "preview":
    from geoclip_qgis.core.maps.raster import Grid, render_preview, write_geotiff
    tif = target.with_name(f"src{version}.tif")
    if not tif.exists():
        write_geotiff(tif, Grid.over([0, 0, 40, 20], 0.5), np.random.default_rng(version).random((40, 80),
                      dtype=np.float32))
    render_preview(tif, target)
elif kind == "bytes":  # shared/atomic.py's small-file writer (the field's meta.json, the hub's refs)
    from geoclip_qgis.shared import atomic
    atomic.write_bytes(target, json.dumps({"version": version, "rows": list(range(100 * version))}).encode(), "bytes")
elif kind == "gallery":  # the gallery cache, through shared/atomic.py
    from geoclip_qgis.core.model.gallery import _save_cache
    assert _save_cache(target, np.full((100 * version, 512), version, np.float32))
elif kind == "journal":
    from geoclip_qgis.core.io.journal import ResultWriter
    w = ResultWriter.plan([target.with_name("r.csv")])
    w.rows = rows
    w.fingerprint = {"version": version}
    w.open()
    w.close()
"""

POINTS = {
    "csv": ["start", "mid-write", "written", "before-fsync", "before-rename", "after-rename"],
    "geojson": ["start", "written", "before-fsync", "before-rename", "after-rename"],
    "gpkg-new": ["start", "written", "before-fsync", "before-rename", "after-rename"],
    "gpkg-layer": ["start", "staged", "dropped", "renamed", "committed"],
    "geotiff": ["start", "written", "before-fsync", "before-rename", "after-rename"],
    "cog": ["start", "written", "cog-written", "before-fsync", "before-rename", "after-rename"],
    "preview": ["start", "written", "before-fsync", "before-rename", "after-rename"],
    "journal": ["before-fsync", "before-rename", "after-rename"],
    "bytes": ["start", "written", "before-fsync", "before-rename", "after-rename"],
    "gallery": ["start", "written", "before-fsync", "before-rename", "after-rename"],
}
SWEPT = set(POINTS) - {"gpkg-layer"}  # the next write of the file sweeps a kill's temporary (shared/atomic.py)
WRITER = {"cog": "geotiff"}  # the crash-point family a kind's writer reports under, when not the kind's name
TARGET = {"csv": "r.csv", "geojson": "r.geojson", "gpkg-new": "r.gpkg", "gpkg-layer": "r.gpkg", "geotiff": "r.tif",
          "cog": "r.tif", "preview": "r.png", "journal": ".r.csv.geoclip-run.jsonl", "bytes": "meta.json",
          "gallery": "g.embeddings"}


def _run(kind: str, target: Path, version: int, kill_at: str = "") -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GEOCLIP_KILL_AT": kill_at}
    proc = subprocess.run([sys.executable, "-c", WRITE, kind, str(target), str(version)], env=env,
                          capture_output=True, text=True, timeout=300)
    if not kill_at:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.returncode


def _state(kind: str, target: Path):
    """What a reader sees: bytes for a file, the layers' rows for a GeoPackage; None when there is nothing."""
    if not target.exists():
        return None
    if kind.startswith("gpkg"):
        con = sqlite3.connect(target)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            tables = sorted(r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")
                            if r[0] in ("geoclip_predictions", "my_parcels"))  # what a reader opens by name
            rows = {t: sorted(r[0] for r in con.execute(f'SELECT {"source" if t.startswith("geoclip") else "name"} '
                                                          f'FROM "{t}"')) for t in tables}
        finally:
            con.close()
        return json.dumps(rows, sort_keys=True)
    if kind == "journal":  # its header names the outputs by their absolute paths, which differ per folder
        lines = [json.loads(line) for line in target.read_text().splitlines()]
        lines[0].pop("outputs")
        return json.dumps(lines, sort_keys=True)
    return hashlib.sha256(target.read_bytes()).hexdigest()


def _user_layer(gpkg: Path) -> None:
    import numpy as np
    import shapely
    from pyogrio.raw import write

    write(str(gpkg), geometry=np.array([shapely.to_wkb(shapely.Point(1, 2))], dtype=object),
          field_data=[np.array(["my parcel"], dtype=object)], fields=["name"], layer="my_parcels", driver="GPKG",
          geometry_type="Point", crs="EPSG:4326")


CASES = [(kind, point) for kind, points in POINTS.items() for point in points]


@pytest.mark.parametrize("kind,point", CASES, ids=[f"{k}@{p}" for k, p in CASES])
def test_sigkill_at_any_point_leaves_the_old_file_or_the_new_one(kind, point, tmp_path):
    old_dir, new_dir, run_dir = tmp_path / "old", tmp_path / "new", tmp_path / "run"
    for d in (old_dir, new_dir, run_dir):
        d.mkdir()
    names = TARGET[kind]
    if kind == "gpkg-layer":  # our layer beside a user's layer in one GeoPackage
        for d in (old_dir, new_dir, run_dir):
            _user_layer(d / names)
    if kind != "gpkg-new":
        _run(kind, old_dir / names, 1)
        _run(kind, run_dir / names, 1)
        _run(kind, new_dir / names, 1)
    _run(kind, new_dir / names, 2)
    old, new = _state(kind, old_dir / names), _state(kind, new_dir / names)
    assert old != new

    code = _run(kind, run_dir / names, 2, kill_at=f"{WRITER.get(kind, kind)}:{point}")
    assert code == -signal.SIGKILL, f"the writer never reached {point!r} (exit {code})"
    after = _state(kind, run_dir / names)
    assert after in (old, new), "a torn file"
    if point in ("after-rename", "committed"):
        assert after == new
    if point == "start":
        assert after == old
    if kind in SWEPT:
        old_enough = time.time() - STALE_S - 60  # the sweep spares temporaries written within the hour
        for p in run_dir.iterdir():
            os.utime(p, (old_enough, old_enough))
        _run(kind, run_dir / names, 2)  # the next write replaces it and sweeps the killed writer's temporary
        assert _state(kind, run_dir / names) == new
        left = [p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != names]
        assert not left, "no temporary file outlives the next write"
    if kind == "gpkg-layer":
        assert "my parcel" in after, "the user's layer must survive every kill"
        _run(kind, run_dir / names, 2)  # the next write finishes the job and clears what the kill left
        assert _state(kind, run_dir / names) == new
        con = sqlite3.connect(run_dir / names)
        assert sorted(r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")) == \
            ["geoclip_predictions", "my_parcels"]
        con.close()


def test_the_matrix_has_five_points_or_more_per_writer():
    assert all(len(p) >= 5 for k, p in POINTS.items() if k != "journal"), POINTS
    assert len(CASES) >= 40


def test_concurrent_writers_of_one_output_use_their_own_temporary_files(tmp_path):
    """Three processes writing one GeoTIFF at once: each writes its own temporary file, the last rename wins, and
    nobody dies on a shared temporary name (it was FileNotFoundError)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    target = tmp_path / "s.tif"
    procs = [subprocess.Popen([sys.executable, "-c", WRITE, "geotiff", str(target), str(v)], env=env,
                              stderr=subprocess.PIPE, text=True) for v in (1, 2, 3)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    import rasterio

    with rasterio.open(target) as ds:
        assert float(ds.read(1)[0, 0]) in (1.0, 2.0, 3.0)
    assert [p.name for p in tmp_path.iterdir()] == ["s.tif"], "no temporary file is left behind"
