#!/usr/bin/env python3
"""Build the release zip and a plugin repository the way qgis-plugin-ci lays them out: one top folder,
geoclip_qgis/, holding metadata.txt, the repository's LICENSE and the compiled translations (.qm), and no caches,
tests or translation sources; next to it `plugins.xml`, the file QGIS's Plugin Manager reads from a repository URL.

    python scripts/package_plugin.py [--out dist] [--repo-url URL]

metadata.txt is the one source of the version; the build stops when CHANGELOG.md has no section for it or when a
translation has not been compiled (scripts/update_translations.py). The zip is named `geoclip_qgis.<version>.zip`
because QGIS takes a repository plugin's folder name from `file_name` up to its first dot.
"""

from __future__ import annotations

import argparse
import configparser
import io
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple
from xml.sax.saxutils import escape, quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plugin_rules  # noqa: E402 - scripts/plugin_rules.py, next to this file

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "geoclip_qgis"
LICENSE = ROOT / "LICENSE"
CHANGELOG = ROOT / "CHANGELOG.md"
# What plugins.qgis.org requires in metadata.txt (its validator), plus what this project always sets. supportsQt6 is
# not among them: QGIS 4 and plugins.qgis.org decide Qt6 compatibility from qgisMaximumVersion (>= 4.0) alone.
REQUIRED = ("name", "description", "about", "version", "qgisMinimumVersion", "qgisMaximumVersion", "author", "email",
            "tracker", "repository", "tags", "icon", "license")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", "tests", "test"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".partial", ".tmp", ".ts", ".orig", ".rej"}
# Where `make repo` says the zip will be downloaded from when no --repo-url is given: the release's assets.
DEFAULT_REPO_URL = "https://github.com/geoclip-qgis/geoclip-qgis/releases/download/v{version}/"


def read_metadata() -> configparser.ConfigParser:
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(PLUGIN / "metadata.txt", encoding="utf-8")
    return meta


def check_metadata() -> configparser.ConfigParser:
    meta = read_metadata()
    missing = [k for k in REQUIRED if not meta.get("general", k, fallback="").strip()]
    if missing:
        raise SystemExit(f"metadata.txt lacks: {', '.join(missing)}")
    if not (PLUGIN / meta.get("general", "icon")).is_file():
        raise SystemExit(f"metadata.txt names icon {meta.get('general', 'icon')}, which does not exist")
    version = meta.get("general", "version")
    if not release_date(version):
        raise SystemExit(f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' section for the version in metadata.txt")
    if not LICENSE.is_file():
        raise SystemExit("LICENSE is missing: plugins.qgis.org requires it in the zip")
    for ts in (PLUGIN / "i18n").glob("*.ts"):
        qm = ts.with_suffix(".qm")
        if not qm.is_file():
            raise SystemExit(f"{qm.relative_to(ROOT)} is missing: run scripts/update_translations.py")
    return meta


def release_date(version: str) -> Optional[str]:
    """The date of a version's CHANGELOG section ('## [0.2.0] - 2026-11-24'), None when it has none."""
    found = re.search(rf"^## \[{re.escape(version)}\] - (\d{{4}}-\d\d-\d\d)", CHANGELOG.read_text(encoding="utf-8"),
                      re.M)
    return found.group(1) if found else None


def first_release_date() -> Optional[str]:
    dates = re.findall(r"^## \[[^\]]+\] - (\d{4}-\d\d-\d\d)", CHANGELOG.read_text(encoding="utf-8"), re.M)
    return min(dates) if dates else None


def members() -> Iterator[Tuple[Path, str]]:
    """(file on disk, name in the zip) for everything the zip holds."""
    for path in sorted(PLUGIN.rglob("*")):
        rel = path.relative_to(ROOT)
        if path.is_dir() or SKIP_DIRS & set(rel.parts) or path.suffix in SKIP_SUFFIXES:
            continue
        yield path, rel.as_posix()
    if not (PLUGIN / "LICENSE").exists():
        yield LICENSE, f"{PLUGIN.name}/LICENSE"


def zip_name(version: str) -> str:
    return f"{PLUGIN.name}.{version}.zip"


def build(out_dir: Path, version: Optional[str] = None) -> Path:
    """The release zip. `version` (tests only) builds the same tree as another version: metadata.txt in the zip
    says that version, so the package and QGIS's installer see it."""
    meta = check_metadata()
    real = meta.get("general", "version")
    version = version or real
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / zip_name(version)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, name in members():
            if name == f"{PLUGIN.name}/metadata.txt" and version != real:
                text = path.read_text(encoding="utf-8")
                zf.writestr(name, re.sub(r"^version=.*$", f"version={version}", text, count=1, flags=re.M))
            else:
                zf.write(path, name)
    problems = plugin_rules.check_zip(target)
    if problems:
        target.unlink()
        raise SystemExit("the zip breaks plugins.qgis.org's rules:\n" + "\n".join(problems))
    return target


def zip_metadata(zip_path: Path) -> configparser.ConfigParser:
    """metadata.txt as the zip holds it: the repository describes exactly what it serves."""
    meta = configparser.ConfigParser(interpolation=None)
    with zipfile.ZipFile(zip_path) as zf:
        meta.read_file(io.StringIO(zf.read(f"{PLUGIN.name}/metadata.txt").decode("utf-8")))
    return meta


def plugin_entry(zip_path: Path, repo_url: str) -> str:
    """One <pyqgis_plugin> element in qgis-plugin-ci's layout, from the zip's own metadata.txt."""
    g: Dict[str, str] = dict(zip_metadata(zip_path)["general"])
    version = g["version"]
    base = repo_url if repo_url.endswith("/") else repo_url + "/"
    created = first_release_date() or ""
    updated = release_date(version) or release_date(read_metadata().get("general", "version")) or created
    icon_name = f"{PLUGIN.name}{Path(g['icon']).suffix}"

    def cdata(key: str, value: Optional[str] = None) -> str:
        text = g.get(key, "") if value is None else value
        text = " ".join(text.split()) if key != "changelog" else text.strip()
        return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"

    def flag(key: str) -> str:
        return "True" if g.get(key, "").strip().lower() in ("true", "yes", "1") else "False"

    fields = [
        ("description", cdata("description")),
        ("about", cdata("about")),
        ("version", escape(version)),
        ("qgis_minimum_version", escape(g["qgisminimumversion"])),
        ("qgis_maximum_version", escape(g["qgismaximumversion"])),
        ("homepage", cdata("homepage")),
        ("file_name", escape(zip_path.name)),
        ("icon", escape(base + icon_name)),
        ("author_name", cdata("author")),
        ("author_email", cdata("email")),
        ("download_url", escape(base + zip_path.name)),
        ("uploaded_by", cdata("author")),
        ("create_date", f"{created}T00:00:00Z" if created else ""),
        ("update_date", f"{updated}T00:00:00Z" if updated else ""),
        ("experimental", flag("experimental")),
        ("deprecated", flag("deprecated")),
        ("tracker", cdata("tracker")),
        ("repository", cdata("repository")),
        ("tags", cdata("tags")),
        ("category", cdata("category")),
        ("changelog", cdata("changelog")),
        ("server", flag("server")),
    ]
    body = "".join(f"    <{k}>{v}</{k}>\n" for k, v in fields)
    return (f"  <pyqgis_plugin name={quoteattr(g['name'])} version={quoteattr(version)} "
            f"plugin_id={quoteattr(PLUGIN.name)}>\n{body}  </pyqgis_plugin>\n")


def write_repository(zips: List[Path], out_dir: Path, repo_url: str) -> Path:
    """plugins.xml (and the icon it names) in out_dir, listing every zip given, newest last."""
    xml = "<?xml version='1.0' encoding='UTF-8'?>\n<plugins>\n"
    xml += "".join(plugin_entry(z, repo_url) for z in zips) + "</plugins>\n"
    target = out_dir / "plugins.xml"
    target.write_text(xml, encoding="utf-8")
    icon = PLUGIN / read_metadata().get("general", "icon")
    shutil.copyfile(icon, out_dir / f"{PLUGIN.name}{icon.suffix}")
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "dist"))
    ap.add_argument("--repo-url", help="the URL the zip will be served from (plugins.xml's download_url); default: "
                    + DEFAULT_REPO_URL)
    ap.add_argument("--no-repo", action="store_true", help="build the zip only")
    args = ap.parse_args()
    out = Path(args.out)
    target = build(out)
    print(target)
    if not args.no_repo:
        version = read_metadata().get("general", "version")
        print(write_repository([target], out, args.repo_url or DEFAULT_REPO_URL.format(version=version)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
