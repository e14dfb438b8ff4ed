"""One I/O plan per run: every input and output resolved to one identity and checked against each other before any
model loads or any byte is written. Every front door (CLI, worker ops, Ray batch; Processing and the dock reach the
engine through the worker) builds one, so the safety rules live here once.

A plan refuses, naming each problem and the fix:
- an output that is an input (`-o list.csv` with `--list list.csv`, `--preview p.png` with `--photos p.png`);
- two outputs that are one file, unless they are distinct layers of one GeoPackage;
- an output format that cannot hold what is asked (regions in a CSV, a preview that is not PNG);
- a file we would create or replace that exists and is not ours. Ours = it carries our mark (the CSV header of one of
  our tables, our GeoJSON collection name, the GeoTIFF/PNG tag GEOCLIP_QGIS, the journal's header, our GeoPackage
  layer mark) or it is listed in the outputs of our run journal. In a GeoPackage only our layers are touched.
A failed plan writes nothing.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set, Tuple

from ...shared import geopackage, photo_list
from ...shared.schema import EARLIER_WIDTHS, FAILURE_FIELDS, TABLES
from ..errors import InputError
from .files import _kind, check_output

MARK = "GEOCLIP_QGIS"  # the tag our GeoTIFFs and PNG previews carry
SUFFIXES = {
    "table": (".csv", ".geojson", ".json", ".gpkg"),
    "failed": (".csv",),
    "journal": (".jsonl",),
    "raster": (".tif", ".tiff"),
    "preview": (".png",),
    "report": (".html", ".htm"),
    "regions": (".gpkg", ".geojson", ".json"),
    "track": (".gpkg", ".geojson", ".json"),
    "folder": None,
}
FIX = {
    "table": "use .csv, .geojson or .gpkg",
    "failed": "name it .csv",
    "journal": "name it .jsonl",
    "raster": "name it .tif",
    "preview": "name it .png",
    "report": "a case report is one HTML file: name it .html",
    "regions": "confidence regions are polygons: write them to .gpkg or .geojson",
    "track": "a trip's track is a line: write it to .gpkg or .geojson",
}
OUR_CSV_HEADERS = {",".join(n for n, _ in fields) for fields in (*TABLES.values(), FAILURE_FIELDS)} | {
    ",".join(n for n, _ in TABLES[table][:width]) for table, widths in EARLIER_WIDTHS.items() for width in widths}
Key = Tuple
REPORT_MARK = f'<meta name="generator" content="{MARK}">'  # in the head of our HTML case reports


def identity(path: os.PathLike | str) -> Key:
    """One key per file however it is spelled (`~` expanded): the one identity rule, shared/photo_list.identity —
    (device, inode) when it exists (links followed, so a link to an input is that input), else its real path."""
    return photo_list.identity(os.path.expanduser(os.fspath(path)))


@dataclass(frozen=True)
class PlannedInput:
    what: str
    path: Path
    key: Key


@dataclass(frozen=True)
class PlannedOutput:
    what: str
    path: Path
    kind: str
    layers: Tuple[str, ...] = ()
    key: Key = ()

    @property
    def is_gpkg(self) -> bool:
        return self.path.suffix.lower() == ".gpkg"


@dataclass
class IOPlan:
    """Collect inputs and outputs with `read`/`write`, then `check()` before any work."""

    door: str = "cli"
    inputs: List[PlannedInput] = field(default_factory=list)
    outputs: List[PlannedOutput] = field(default_factory=list)
    trusted: Set[Key] = field(default_factory=set)  # outputs our journal says an earlier run wrote
    problems: List[Tuple[str, str, str]] = field(default_factory=list)  # (message, path, fix)

    # ---- declaring --------------------------------------------------------------------------------------------
    def read(self, path: Optional[os.PathLike | str], what: str, folder: bool = False) -> Optional[Path]:
        """An input the run reads; it must exist (a regular file, or a folder when `folder`)."""
        if path is None or str(path) == "":
            return None
        p = Path(os.path.expanduser(os.fspath(path)))
        try:
            st = os.stat(p)
        except OSError as exc:
            self.problems.append((f"{what} not found" if isinstance(exc, FileNotFoundError) else
                                  f"{what} cannot be read ({exc.strerror or exc})", str(p), "check the path"))
            return p
        if folder and not stat.S_ISDIR(st.st_mode):
            self.problems.append((f"{what} is not a folder", str(p), "give the folder"))
        elif not folder and not stat.S_ISREG(st.st_mode):
            self.problems.append((f"{what} is {_kind(st.st_mode)}, not a regular file", str(p), "check the path"))
        self.inputs.append(PlannedInput(what, p, identity(p)))
        return p

    def read_many(self, paths: Iterable[os.PathLike | str], what: str) -> None:
        """Many inputs (photos) whose readability the engine reports one by one: only their identities count."""
        for raw in paths:
            p = Path(os.path.expanduser(os.fspath(raw)))
            self.inputs.append(PlannedInput(what, p, identity(p)))

    def read_if_file(self, spec: Optional[str], what: str) -> None:
        """An option that is a file or something else (a gallery 'default', an AOI bbox or WKT)."""
        if spec and os.path.lexists(os.path.expanduser(str(spec))):
            self.read(spec, what)

    def read_if_exists(self, path: Optional[os.PathLike | str], what: str) -> None:
        """An input the engine checks itself with a more precise message (weights and CLIP folders, which may
        also be hub ids): only its identity counts here, so no output can be written over it."""
        if path and os.path.lexists(os.path.expanduser(os.fspath(path))):
            p = Path(os.path.expanduser(os.fspath(path)))
            self.inputs.append(PlannedInput(what, p, identity(p)))

    def read_run_inputs(self, photos: Iterable = (), list_file=None, gallery=None, aoi=None, weights=None,
                        clip_path=None) -> IOPlan:
        """The inputs every front door declares the same way (the CLI from its options, the worker from a request):
        photos, a list file, a gallery CSV (not 'default' or 'fibonacci:N'), an area-of-interest file, the weights
        and CLIP folders."""
        self.read_many(photos, "photo")
        self.read(list_file, "list file")
        if gallery and gallery != "default" and not str(gallery).startswith("fibonacci:"):
            self.read(gallery, "gallery")
        if isinstance(aoi, (str, os.PathLike)):
            self.read_if_file(aoi, "area of interest")
        self.read_if_exists(weights or None, "weights folder")
        self.read_if_exists(clip_path or None, "CLIP folder")
        return self

    def write_raster(self, out, preview=None, regions=None) -> IOPlan:
        """A raster command's outputs: the GeoTIFF, its PNG preview and the confidence regions (our layer)."""
        self.write(out, "output GeoTIFF", "raster")
        if preview:
            self.write(preview, "preview", "preview")
        if regions:
            self.write(regions, "regions output", "regions", ("geoclip_regions",))
        return self

    def write(self, path: os.PathLike | str, what: str, kind: str, layers: Sequence[str] = ()) -> PlannedOutput:
        p = Path(os.path.expanduser(os.fspath(path)))
        out = PlannedOutput(what, p, kind, tuple(layers) if p.suffix.lower() == ".gpkg" else (), identity(p))
        self.outputs.append(out)
        return out

    def trust(self, paths: Iterable[os.PathLike | str]) -> None:
        """Files our run journal lists as written by an earlier run of ours."""
        self.trusted |= {identity(p) for p in paths}

    # ---- checking ---------------------------------------------------------------------------------------------
    def check(self) -> IOPlan:
        """Every rule, every problem said at once; raises InputError when any holds. Writes nothing."""
        problems = list(self.problems)
        for out in self.outputs:
            problems.extend(self._format_problems(out))
        by_key = {}
        for inp in self.inputs:
            by_key.setdefault(inp.key, inp)
        for out in self.outputs:
            inp = by_key.get(out.key)
            if inp is not None:
                problems.append((f"the {out.what} is the {inp.what} {inp.path}: it would be overwritten", str(out.path),
                                 "choose another output name"))
        for i, a in enumerate(self.outputs):
            for b in self.outputs[i + 1:]:
                if a.key != b.key:
                    continue
                if a.is_gpkg and b.is_gpkg and not set(a.layers) & set(b.layers):
                    continue  # two layer sets of one GeoPackage
                problems.append((f"the {a.what} and the {b.what} are one file", str(b.path),
                                 "give each output its own name"))
        if not problems:
            for out in self.outputs:
                problems.extend(self._ownership_problems(out))
        if problems:
            seen, unique = set(), []
            for pr in problems:
                if pr not in seen:
                    seen.add(pr)
                    unique.append(pr)
            if len(unique) == 1:
                msg, path, fix = unique[0]
                raise InputError(msg, path, fix)
            raise InputError("; ".join(f"{m} ({p})" if p else m for m, p, _ in unique), None,
                             "; ".join(dict.fromkeys(f for _, _, f in unique if f)))
        return self

    def _format_problems(self, out: PlannedOutput) -> List[Tuple[str, str, str]]:
        allowed = SUFFIXES[out.kind]
        if allowed is not None and out.path.suffix.lower() not in allowed:
            suffix = out.path.suffix or "a file without a suffix"
            return [(f"unknown output format: the {out.what} cannot be {suffix}", str(out.path), FIX[out.kind])]
        if out.kind == "folder":
            if out.path.exists() and not out.path.is_dir():
                return [(f"the {out.what} exists and is not a folder", str(out.path), "give a folder name")]
            parent = out.path.parent
            if not parent.is_dir():
                return [(f"the {out.what}'s parent folder does not exist", str(parent), "create it first")]
            return []
        for layer in out.layers:
            bad = geopackage.layer_name_problem(layer)
            if bad:
                return [(bad, str(out.path), "choose another layer name")]
        try:
            check_output(out.path, out.what)
        except InputError as exc:
            return [(exc.message, str(exc.path or out.path), exc.hint or "")]
        return []

    def _ownership_problems(self, out: PlannedOutput) -> List[Tuple[str, str, str]]:
        if out.kind == "folder" or not out.path.exists():
            return []
        if out.is_gpkg:
            return [(m, str(out.path), "choose another layer name, or another file")
                    for m in geopackage.refusals(str(out.path), out.layers)]
        if out.key in self.trusted or is_ours(out.path, out.kind):
            return []
        return [(f"the {out.what} exists and GeoCLIP did not write it", str(out.path),
                 "choose a new file name (GeoCLIP replaces only files it wrote)")]


def is_ours(path: Path, kind: str) -> bool:
    """Does an existing file carry our mark?"""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, "rb") as fh:
                head = fh.readline(4096).decode("utf-8-sig", "replace").strip()
            return head in OUR_CSV_HEADERS
        if suffix in (".geojson", ".json"):
            with open(path, "rb") as fh:
                head = fh.read(4096).decode("utf-8", "replace")
            return '"name": "geoclip_' in head or '"name":"geoclip_' in head
        if suffix == ".jsonl":
            with open(path, "rb") as fh:
                first = json.loads(fh.readline(1 << 20).decode("utf-8"))
            return isinstance(first, dict) and "journal" in first
        if suffix in (".tif", ".tiff"):
            import rasterio

            with rasterio.open(path) as ds:
                return MARK in ds.tags()
        if suffix in (".html", ".htm"):
            with open(path, "rb") as fh:
                return REPORT_MARK in fh.read(4096).decode("utf-8", "replace")
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                return MARK in (getattr(im, "text", None) or im.info)
    except Exception:  # unreadable, not the format its name says: not ours
        return False
    return False
