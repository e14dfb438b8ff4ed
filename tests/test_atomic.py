"""The one atomic writer's home (shared/atomic.py): every file we produce is replaced there and nowhere else, its
temporary names are ours alone, and what killed writers leave is swept by the next write without touching a user's
file or a live writer's. The kill matrix (test_kill_matrix.py) kills its writers at every step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geoclip_qgis.shared import atomic

PACKAGE = Path(__file__).resolve().parents[1] / "geoclip_qgis"
# The renames that are not a write of ours: a damaged cache moved aside (kept for inspection), the weights' folder
# put in place after its files were fsynced, a Ray part moved on a pyarrow filesystem (no fsync there).
NOT_WRITES = {"core/model/gallery.py": 1, "core/maps/location_field.py": 1, "shared/weights_release.py": 1,
              "core/service/ray_batch.py": 1}


RENAMES = re.compile(r"\bos\.(?:replace|rename)\(|\bshutil\.move\(|\bfilesystem\.move\(|\.rename\("
                     r"|(?<!atomic)\.replace\((?![\"'bf]|os\.sep|microsecond|tzinfo)")  # pathlib's too, not str's


def test_files_are_replaced_only_by_the_one_atomic_writer():
    """A rename over a file is where a writer's data becomes the user's: it lives in shared/atomic.py, fsync and
    folder fsync included. A new writer that renames on its own (os, shutil or pathlib) fails here."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        n = len(RENAMES.findall(path.read_text()))
        if n and rel != "shared/atomic.py":
            found[rel] = n
    assert found == NOT_WRITES
    assert len(re.findall(r"\bos\.replace\(", (PACKAGE / "shared" / "atomic.py").read_text())) == 1
    for line in ("tmp.rename(final)", "Path(tmp).replace(path)", "os.rename(a, b)"):
        assert RENAMES.search(line), line
    for line in ('name.replace(".", "_")', "rel.replace(os.sep, '/')", "atomic.replace(tmp, final)"):
        assert not RENAMES.search(line), line


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _aged(*paths: Path) -> None:
    old = time.time() - atomic.STALE_S - 60
    for p in paths:
        os.utime(p, (old, old))


@pytest.mark.parametrize("name", ["meta.json", "r.v2.final.csv", "refs", ".r.csv.geoclip-run.jsonl", "a+b(1).tif"])
def test_a_write_sweeps_only_what_dead_writers_of_that_file_left(tmp_path, name):
    target = tmp_path / name
    stem, suffix = target.stem, target.suffix
    dead, live = _dead_pid(), os.getppid()
    stale = [tmp_path / f".{stem}.{dead}.0123abcd.{tag}{suffix}" for tag in atomic.TAGS]
    kept = [tmp_path / f".{stem}.{live}.0123abcd.tmp{suffix}",  # a writer still at work
            tmp_path / f".{stem}.99999999999.0123abcd.tmp{suffix}",  # no pid at all (it blocked every write)
            tmp_path / f".{stem}.{dead}.0123abcd.old{suffix}",  # not our tag: a user's hidden backup
            tmp_path / f".other.{dead}.0123abcd.tmp{suffix}",  # another output's
            tmp_path / f".{stem}.{dead}.notours.tmp{suffix}", tmp_path / f"{name}.partial.pdf",  # not our names
            tmp_path / f"{stem}.{dead}.0123abcd.tmp{suffix}"]
    fresh = tmp_path / f".{stem}.{dead}.fedcba98.tmp{suffix}"  # a dead pid, but written a moment ago: on another
    for p in [*stale, *kept, fresh]:  # host sharing the folder, that pid may be a live writer's
        p.write_text("x")
    _aged(*stale, *kept)
    atomic.write_text(target, '{"rows": 1}')
    assert target.read_text() == '{"rows": 1}'
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in [*kept, fresh])
    with pytest.raises(ValueError):
        atomic.temp_sibling(target, "bak")  # a tag the sweep does not know would be left for good


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


def test_fsync_opens_the_file_for_writing_on_windows(tmp_path, monkeypatch):
    """Windows' fsync (_commit, FlushFileBuffers) fails with EBADF on a read-only handle: every atomic write would
    fail there. The flags are checked here, as no Windows machine runs these tests."""
    f = tmp_path / "x.csv"
    f.write_text("x")
    seen = []
    real_open = os.open

    def spy(path, flags, *args):
        seen.append(flags)
        return real_open(path, flags, *args)

    monkeypatch.setattr(atomic.os, "open", spy)
    atomic.fsync_file(f)
    monkeypatch.setattr(atomic.os, "name", "nt")
    atomic.fsync_file(f)
    assert seen[0] & (os.O_WRONLY | os.O_RDWR) == 0 and seen[1] & os.O_RDWR
