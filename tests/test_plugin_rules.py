"""plugins.qgis.org's upload rules hold for the release zip (scripts/plugin_rules.py), and the checker catches what
the site refuses."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import package_plugin  # noqa: E402
import plugin_rules  # noqa: E402


@pytest.fixture(scope="module")
def release_zip(tmp_path_factory) -> Path:
    return package_plugin.build(tmp_path_factory.mktemp("dist"))


def test_the_release_zip_follows_plugins_qgis_org_rules(release_zip):
    assert plugin_rules.check_zip(release_zip) == []
    assert release_zip.stat().st_size <= 25_000_000
    with zipfile.ZipFile(release_zip) as zf:
        names = zf.namelist()
    assert {n.split("/")[0] for n in names} == {"geoclip_qgis"}
    assert "geoclip_qgis/LICENSE" in names and "geoclip_qgis/metadata.txt" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".so", ".pyd", ".dll"))]


def test_metadata_is_what_current_qgis_reads_for_qt6(release_zip):
    """QGIS 4 (and plugins.qgis.org) decide Qt6 compatibility from qgisMaximumVersion; supportsQt6 is deprecated."""
    meta = package_plugin.zip_metadata(release_zip)["general"]
    assert meta["qgisMaximumVersion"] == "4.99" and meta["qgisMinimumVersion"] == "3.22"
    assert "supportsQt6" not in meta


def _zip(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


GOOD_META = ("[general]\nname=X\ndescription=d\nabout=a\nversion=1.0\nqgisMinimumVersion=3.22\n"
             "qgisMaximumVersion=4.99\nauthor=A\nemail=a@b.c\ntracker=https://t.org/i\nrepository=https://t.org/r\n")


def test_the_checker_refuses_what_the_site_refuses(tmp_path):
    good = {"p_1/__init__.py": "", "p_1/metadata.txt": GOOD_META, "p_1/LICENSE": "GPL"}
    assert plugin_rules.check_zip(_zip(tmp_path / "ok.zip", good)) == []
    cases = {
        "no LICENSE": ({k: v for k, v in good.items() if k != "p_1/LICENSE"}, "LICENSE is missing"),
        "bytecode": ({**good, "p_1/__pycache__/m.cpython-311.pyc": b"\0"}, "__pycache__"),
        "library": ({**good, "p_1/lib/fast.so": b"\x7fELF"}, "compiled or binary"),
        "hidden executable": ({**good, "p_1/data.txt": b"\x7fELF\x02\x01"}, "executable"),
        "binary in text": ({**good, "p_1/m.py": b"x = 1\0"}, "binary content"),
        "package name": ({k.replace("p_1", "1p"): v for k, v in good.items()}, "top folder"),
        "two folders": ({**good, "q/x.py": ""}, "exactly one top folder"),
        "no email": ({**good, "p_1/metadata.txt": GOOD_META.replace("email=a@b.c\n", "")}, "lacks email"),
        "qgis 3 only": ({**good, "p_1/metadata.txt": GOOD_META.replace("4.99", "3.99")}, "4.0 or later"),
        "supportsQt6": ({**good, "p_1/metadata.txt": GOOD_META + "supportsQt6=True\n"}, "deprecated"),
        "bad tracker": ({**good, "p_1/metadata.txt": GOOD_META.replace("https://t.org/i", "bugs")}, "tracker"),
        "author slash": ({**good, "p_1/metadata.txt": GOOD_META.replace("author=A", "author=A/B")}, "slashes"),
    }
    for what, (files, expected) in cases.items():
        problems = plugin_rules.check_zip(_zip(tmp_path / f"{what}.zip", files))
        assert any(expected in p for p in problems), (what, problems)
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as zf:
        for name, data in good.items():
            zf.writestr(name, data)
        zf.writestr("p_1/big.png", b"\x89PNG" + bytes(25_000_001))
    assert any("at most 25 MB" in p for p in plugin_rules.check_zip(big))
