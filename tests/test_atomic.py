"""The one atomic writer's home (shared/atomic.py): every file we produce is replaced there and nowhere else, its
temporary names are ours alone, and what killed writers leave is swept by the next write without touching a user's
file or a live writer's. The kill matrix (test_kill_matrix.py) kills its writers at every step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from geoclip_qgis.shared import atomic

PACKAGE = Path(__file__).resolve().parents[1] / "geoclip_qgis"
# The renames that are not a write of ours: a damaged cache moved aside (kept for inspection), the weights' folder
# put in place after its files were fsynced, a Ray part moved on a pyarrow filesystem (no fsync there).
NOT_WRITES = {"core/model/gallery.py": 1, "core/maps/location_field.py": 1, "shared/weights_release.py": 1,
              "core/service/ray_batch.py": 1}


def test_files_are_replaced_only_by_the_one_atomic_writer():
    """A rename over a file is where a writer's data becomes the user's: it lives in shared/atomic.py, fsync and
    folder fsync included. A new writer that renames on its own fails here."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        n = len(re.findall(r"\bos\.(?:replace|rename)\(|\bshutil\.move\(|\bfilesystem\.move\(", path.read_text()))
        if n and rel != "shared/atomic.py":
            found[rel] = n
    assert found == NOT_WRITES
    assert len(re.findall(r"\bos\.replace\(", (PACKAGE / "shared" / "atomic.py").read_text())) == 1


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_write_sweeps_only_what_dead_writers_of_that_file_left(tmp_path):
    target = tmp_path / "meta.json"
    dead, live = _dead_pid(), os.getppid()
    stale = tmp_path / f".meta.{dead}.0123abcd.tmp.json"
    running = tmp_path / f".meta.{live}.0123abcd.tmp.json"  # a writer that is still at work
    others = [tmp_path / f".other.{dead}.0123abcd.tmp.json",  # another output's
              tmp_path / f".meta.{dead}.notours.tmp.json", tmp_path / "meta.json.partial.pdf",  # not our names
              tmp_path / f"meta.{dead}.0123abcd.tmp.json"]
    for p in [stale, running, *others]:
        p.write_text("x")
    atomic.write_text(target, '{"rows": 1}')
    assert target.read_text() == '{"rows": 1}'
    assert not stale.exists()
    assert running.exists() and all(p.exists() for p in others)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    with pytest.raises(atomic.NotWritten), atomic.atomic_path(target):
        pass  # the writer wrote nothing
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_refused_rename_keeps_a_download_when_asked(tmp_path):
    folder = tmp_path / "final"
    folder.mkdir()
    (folder / "x").write_text("a folder cannot be replaced by a file")
    for keep in (False, True):
        part = tmp_path / "weights.partial"
        part.write_bytes(b"4 GB verified")
        with pytest.raises(OSError):
            atomic.replace(part, folder, "download", keep=keep)
        assert part.exists() == keep


def test_temporary_names_are_unique_and_keep_the_suffix(tmp_path):
    names = {atomic.temp_sibling(tmp_path / "r.tif").name for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(".r.") and n.endswith(".tmp.tif") for n in names)
