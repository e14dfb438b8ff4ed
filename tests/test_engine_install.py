"""The engine install works on every Python it claims (the weights come from the geoclip wheel's data files, not
from installing it), says so before it starts where it cannot, and nothing downloads a model without being asked."""

from __future__ import annotations

import ast
import hashlib
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from geoclip_qgis.shared import weights_release

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "geoclip_qgis"


def _fake_wheel(path: Path, source: Path) -> Path:
    """A wheel laid out like geoclip 1.3.0's, holding the real data files (from the installed oracle)."""
    with zipfile.ZipFile(path, "w") as zf:
        for member, (rel, _sha) in weights_release.DATA_FILES.items():
            zf.write(source / rel, member)
        zf.writestr(weights_release.LICENSE_MEMBER, "MIT License")
        zf.writestr("geoclip/__init__.py", "")
    return path


@pytest.fixture()
def oracle_data() -> Path:
    from geoclip_qgis.core.model.weights import wheel_data_dir

    return wheel_data_dir()


def test_the_wheel_is_checked_and_only_its_data_files_unpacked(tmp_path, oracle_data, monkeypatch):
    wheel = _fake_wheel(tmp_path / weights_release.WHEEL, oracle_data)
    with pytest.raises(weights_release.WeightsReleaseError, match="not PyPI's"):
        weights_release.unpack(wheel, tmp_path / "w")  # not the published file: refused before anything is written
    assert not (tmp_path / "w").exists()
    monkeypatch.setattr(weights_release, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    dest = weights_release.unpack(tmp_path, tmp_path / "w")  # the folder pip download wrote into
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == sorted([rel for rel, _ in weights_release.DATA_FILES.values()] + ["LICENSE-geoclip.txt"])
    assert weights_release.is_unpacked(dest) and not list(tmp_path.glob(".geoclip-weights-*"))

    bad = tmp_path / "bad" / weights_release.WHEEL
    bad.parent.mkdir()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(bad, "w") as zf:
        for item in src.infolist():
            data = src.read(item)
            zf.writestr(item, data[:-1] + b"!" if item.filename.endswith("logit_scale_weights.pth") else data)
    monkeypatch.setattr(weights_release, "WHEEL_SHA256", hashlib.sha256(bad.read_bytes()).hexdigest())
    with pytest.raises(weights_release.WeightsReleaseError, match="logit_scale_weights.pth"):
        weights_release.unpack(bad, tmp_path / "w")
    assert weights_release.is_unpacked(tmp_path / "w"), "a failed unpack leaves the good folder as it was"


def test_the_loader_reads_the_unpacked_weights_first(tmp_path, oracle_data, monkeypatch):
    from geoclip_qgis.core.model import weights

    monkeypatch.delenv("GEOCLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("GEOCLIP_QGIS_CACHE", str(tmp_path / "cache"))
    assert weights.default_weights_dir() == oracle_data, "nothing unpacked: a development install's wheel"
    target = weights_release.weights_dir()
    for rel, _ in weights_release.DATA_FILES.values():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(oracle_data / rel, target / rel)
    assert weights.default_weights_dir() == target == tmp_path / "cache" / "weights" / "geoclip-1.3.0"
    loaded = weights.load_weights()
    assert loaded.source == str(target) and loaded.logit_scale.numel() == 1

    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)

    shutil.rmtree(target)
    monkeypatch.setattr(md, "distribution", missing)  # no oracle either: a user's engine before the download
    with pytest.raises(weights.WeightsError) as info:
        weights.load_weights()
    assert "not downloaded yet" in str(info.value) and "geoclip-qgis download weights" in str(info.value)


def test_manager_plan_downloads_the_wheel_file_not_the_package():
    from geoclip_qgis.gui.manager import dialog as manager
    from geoclip_qgis.gui.manager.install_plan import SUPPORTED_PYTHONS, python_problem

    steps = manager.install_steps(Path("/tmp/venv"), None, "linux")
    commands = [" ".join(args) for _title, _prog, args in steps]
    assert not any("install" in c and "geoclip==" in c for c in commands), "geoclip itself is never installed"
    download, unpack = steps[-2][2], steps[-1][2]
    assert download[:3] == ["-m", "pip", "download"] and "--python-version" in download
    assert download[download.index("--python-version") + 1] == "3.11" and "--no-deps" in download
    assert unpack[:4] == ["-m", "geoclip_qgis.shared.weights_release", "unpack", download[download.index("--dest") + 1]]
    assert unpack[4] == str(weights_release.weights_dir())

    assert SUPPORTED_PYTHONS == ((3, 9), (3, 14))
    for ok in ((3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14)):
        assert python_problem(ok) is None
    assert "3.8" in python_problem((3, 8)) and "3.9 to 3.14" in python_problem((3, 8))
    assert "3.15" in python_problem((3, 15))
    text = (PLUGIN / "resources" / "engine-requirements.txt").read_text(encoding="utf-8")
    assert "Supported: Python 3.9 to 3.14" in text


def test_manager_refuses_an_unsupported_python_before_creating_anything(qgis_iface, monkeypatch, tmp_path):
    from geoclip_qgis.gui.manager import dialog as manager

    monkeypatch.setattr(manager.ManagerDialog, "refresh", lambda self: None)
    monkeypatch.setattr(manager, "python_problem", lambda: "QGIS runs Python 3.8, and the engine needs 3.9")
    ran = []
    monkeypatch.setattr(manager, "install_steps", lambda *a, **k: ran.append(a) or [])
    dlg = manager.ManagerDialog()
    dlg.driver_known, dlg.driver = True, None
    dlg.start_install()
    assert not ran and dlg.proc is None and "Python 3.8" in dlg.log.toPlainText()
    assert dlg.install.isEnabled(), "nothing runs: the buttons stay usable"
    dlg.shutdown()
    dlg.deleteLater()


def test_clip_is_never_fetched_without_consent(monkeypatch, tmp_path):
    from geoclip_qgis.core.errors import BackboneError
    from geoclip_qgis.core.model.image_encoder import CLIP_HUB_ID, resolve_clip_path

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.delenv("GEOCLIP_CLIP_PATH", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("GEOCLIP_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(BackboneError) as info:
        resolve_clip_path(None)
    assert "not downloaded" in str(info.value) and "geoclip-qgis download clip" in str(info.value)
    monkeypatch.setenv("GEOCLIP_ALLOW_DOWNLOAD", "1")  # the user's explicit word: the hub id, fetched on first use
    assert resolve_clip_path(None) == CLIP_HUB_ID


# Where a model download may start, and who may call it: the manager's buttons, the worker's download_clip op (sent
# by the manager's button only) and the CLI's `download` command.
DOWNLOADERS = {"download_clip": {"core/io/hub_download.py", "core/service/worker.py", "core/service/cli.py"},
               "download_clip_folder": {"client/downloader.py", "gui/manager/downloads.py"},
               "start_worker_download": {"gui/manager/downloads.py"}}


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            yield f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def test_downloads_start_only_from_a_click_or_a_command():
    seen = {name: set() for name in DOWNLOADERS}
    weights_download, hub_doors = set(), set()
    for path in PLUGIN.rglob("*.py"):
        rel = path.relative_to(PLUGIN).as_posix()
        text = path.read_text(encoding="utf-8")
        for call in _calls(path):
            if call in seen:
                seen[call].add(rel)
        if "weights_release.download(" in text or "pip_download_args(" in text:
            weights_download.add(rel)
        if "hub_files.download(" in text:  # the one download rule, reached through its two transports only
            hub_doors.add(rel)
    for name, allowed in DOWNLOADERS.items():
        assert seen[name] <= allowed, (name, seen[name] - allowed)
    assert hub_doors == {"core/io/hub_download.py", "client/downloader.py"}, hub_doors
    assert weights_download <= {"core/service/cli.py", "gui/manager/install_plan.py", "shared/weights_release.py"}
    dialog = (PLUGIN / "gui" / "manager" / "dialog.py").read_text(encoding="utf-8")
    for slot in ("self.download.clicked.connect(self.start_download)",
                 "self.install.clicked.connect(self.start_install)"):
        assert slot in dialog
    worker = (PLUGIN / "core" / "service" / "worker.py").read_text(encoding="utf-8")
    assert '"download_clip"' in (PLUGIN / "shared" / "protocol.py").read_text(encoding="utf-8")
    assert "op_download_clip" in worker
    sent = [p.relative_to(PLUGIN).as_posix() for p in PLUGIN.rglob("*.py")
            if '"download_clip", params' in p.read_text(encoding="utf-8")]
    assert sent == ["gui/manager/downloads.py"], sent


def test_cli_download_command_is_the_only_cli_door(monkeypatch, tmp_path, capsys):
    from geoclip_qgis.core.service import cli

    calls = []
    monkeypatch.setattr(weights_release, "download", lambda dest=None, python=sys.executable: calls.append(dest)
                        or Path(dest or "x"))
    assert cli.main(["download", "weights", "--dest", str(tmp_path)]) == 0
    assert calls == [str(tmp_path)] and str(tmp_path) in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["download", "everything"])


def test_unpack_command_line(tmp_path, oracle_data, monkeypatch):
    wheel = _fake_wheel(tmp_path / weights_release.WHEEL, oracle_data)
    monkeypatch.setattr(weights_release, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert weights_release.main(["unpack", str(tmp_path), str(tmp_path / "dest")]) == 0
    assert weights_release.is_unpacked(tmp_path / "dest")
    assert weights_release.main(["unpack", str(tmp_path / "nothing-here")]) == 1
    assert weights_release.main([]) == 2
    assert os.path.basename(out.getvalue().strip()) == "dest"
