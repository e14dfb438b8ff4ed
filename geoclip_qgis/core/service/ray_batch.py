"""A photo batch on Ray Data, for archives that outgrow one machine (`geoclip-qgis photos ... --ray [ADDRESS]`).

The photo list is a Ray dataset; `map_batches` runs it through a pool of actors, each holding one loaded
GeoClipEngine (one actor per GPU when the cluster has GPUs, else CPU actors). Each task writes its results
itself, as one Parquet file per table under the output folder (any filesystem pyarrow reads: a local folder,
s3://, gs://, hdfs://):

    OUT/predictions/part-<id>.parquet   the raw top-k      (export.PREDICTION_FIELDS + WKB geometry)
    OUT/places/part-<id>.parquet        distinct places    (export.PLACE_FIELDS + geometry)
    OUT/failed/part-<id>.parquet        unreadable photos  (export.FAILURE_FIELDS)
    OUT/summary/part-<id>.parquet       one row per photo  (export.SUMMARY_FIELDS + geometry), written last

The columns are the CLI's (one definition, in core/io/results.py); the geometry column makes each table GeoParquet
(WKB points in OGC:CRS84, the "geo" metadata). `<id>` is a digest of the task's photo list, so a retried task
rewrites its own files and never duplicates rows; the summary file is written last and marks the task done.

Resume: photos whose summary row exists are skipped, and result files without a summary (a task cut off between
writes) are removed first. A photo that cannot be read is a row of the failed table, never a failed job. An
actor that dies (out of memory, a crashed decoder) is restarted by Ray and its task retried (`max_restarts`,
`max_task_retries`).

Ray is an optional extra (`pip install 'geoclip-qgis[ray]'`): nothing imports this module at CLI import time,
and the plugin never does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

from ..errors import GeoClipError, InputError
from ..io.results import (
    FAILURE_FIELDS,
    PLACE_FIELDS,
    PREDICTION_FIELDS,
    SUMMARY_FIELDS,
    _point_wkb,
    failure_row,
    place_rows,
    prediction_rows,
    source_key,
    summary_row,
)

log = logging.getLogger("geoclip_qgis")
RAY_HINT = "install the Ray extra in the engine's Python: pip install 'geoclip-qgis[ray]' (ray[data] >= 2.9)"
# table -> (fields, has a point geometry); summary last: its file marks a task done
TABLES: Dict[str, Tuple[list, bool]] = {
    "predictions": (PREDICTION_FIELDS, True),
    "places": (PLACE_FIELDS, True),
    "failed": (FAILURE_FIELDS, False),
    "summary": (SUMMARY_FIELDS, True),
}
MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")
_ARROW_TYPES = {"str": "string", "int": "int64", "float": "float64"}
_GEO = {"version": "1.1.0", "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"]}}}  # no "crs": OGC:CRS84 (lon, lat)


def import_ray():
    """Ray and Ray Data, or an InputError that says how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise InputError(f"the Ray batch needs Ray Data ({exc})", hint=RAY_HINT) from exc
    return ray


def is_uri(path: str) -> bool:
    return "://" in path


def photo_key(path: str) -> str:
    """How photos are compared across runs: a local path as the CLI does (export.source_key), a URI as written."""
    return path if is_uri(path) else source_key(path)


# ---- output dataset ---------------------------------------------------------------------------------------------
def _filesystem(out: str):
    """(pyarrow filesystem, root path inside it) for a local folder or any URI pyarrow understands."""
    from pyarrow import fs

    if is_uri(out):
        return fs.FileSystem.from_uri(out)
    return fs.LocalFileSystem(), str(Path(out).expanduser().resolve())


def arrow_table(table: str, rows: List[dict]):
    """Rows as an Arrow table with the table's columns (export's fields), plus a GeoParquet geometry column."""
    import pyarrow as pa

    fields, geometry = TABLES[table]
    schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in fields])
    data = pa.Table.from_pylist(rows, schema=schema)
    if geometry:
        wkb = [_point_wkb(r.get("lon"), r.get("lat")) for r in rows]
        data = data.append_column(pa.field("geometry", pa.binary()), pa.array(wkb, pa.binary()))
        data = data.replace_schema_metadata({b"geo": json.dumps(_GEO).encode()})
    return data


def _write(filesystem, path: str, table) -> None:
    """Write under a temporary name and move into place, so that a file that exists is whole."""
    import pyarrow.parquet as pq

    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # unique: a retried task never shares it
    pq.write_table(table, tmp, filesystem=filesystem)
    filesystem.move(tmp, path)


OUR_PART = re.compile(r"^part-[0-9a-f]{20}\.parquet$")  # the names our tasks write; nothing else is ours
MARKER = ".geoclip-ray-dataset.json"  # written first into a dataset folder we create: the folder is ours


def _parts(filesystem, folder: str) -> Set[str]:
    """Our part files in one table folder (a user's own file there is neither read nor deleted)."""
    from pyarrow import fs

    infos = filesystem.get_file_info(fs.FileSelector(folder, allow_not_found=True))
    return {i.base_name for i in infos if i.type == fs.FileType.File and OUR_PART.match(i.base_name)}


# The engine options that change what a row means: a resumed dataset must have been made with the same ones.
ANSWER_OPTIONS = ("weights", "gallery", "aoi", "place_radius_km", "region_res", "hint", "hint_weight", "precision")


def run_fingerprint(engine_options: dict, top_k: int) -> dict:
    """What --resume insists on for a dataset (as the CLI's journal does for its tables): top-k and the options
    that shape the answers, as given (an area file by its content)."""
    fp = {"top_k": int(top_k)}
    for key in ANSWER_OPTIONS:
        value = engine_options.get(key)
        if key == "aoi" and isinstance(value, str) and os.path.isfile(os.path.expanduser(value)):
            with open(os.path.expanduser(value), "rb") as fh:
                value = "sha256:" + hashlib.sha256(fh.read()).hexdigest()
        if key == "hint_weight" and not engine_options.get("hint"):
            value = None  # a weight without a hint changes nothing
        if key == "precision" and value in (None, "", "auto", "fp32", "fp16"):
            value = None  # rows of these stay comparable, as in the CLI's journal
        fp[key] = value
    return fp


def _claim(filesystem, root: str, run: Optional[dict] = None) -> Optional[dict]:
    """Refuse a folder that exists, holds anything, and is not ours; mark a new or empty one as ours (with the run's
    fingerprint). Returns the fingerprint a dataset of ours was made with (None when it predates them)."""
    from pyarrow import fs

    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.File:
        raise InputError("the output dataset exists and is a file, not a folder", root, "name a folder: -o results/")
    marker = f"{root}/{MARKER}"
    if info.type == fs.FileType.Directory:
        if filesystem.get_file_info(marker).type == fs.FileType.File:
            with filesystem.open_input_stream(marker) as fh:
                try:
                    return json.loads(fh.read().decode("utf-8")).get("run")
                except ValueError:
                    return None
        if filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True)):
            raise InputError("the output folder exists, holds files, and GeoCLIP did not make it", root,
                             "name a new folder (GeoCLIP writes only into folders it made)")
    filesystem.create_dir(root, recursive=True)
    with filesystem.open_output_stream(marker) as fh:
        fh.write(json.dumps({"geoclip_qgis": "ray dataset", "tables": list(TABLES), "run": run}).encode())
    return run


def read_table(out: str, table: str, columns: Optional[List[str]] = None):
    """One table of an output dataset as an Arrow table (empty, with the right columns, when it has no rows)."""
    import pyarrow.dataset as pds

    filesystem, root = _filesystem(out)
    files = sorted(_parts(filesystem, f"{root}/{table}"))
    if not files:
        empty = arrow_table(table, [])
        return empty.select(columns) if columns else empty
    return pds.dataset([f"{root}/{table}/{f}" for f in files], filesystem=filesystem, format="parquet").to_table(
        columns=columns)


def prepare_output(out: str, resume: bool, run: Optional[dict] = None) -> Set[str]:
    """The keys of the photos already done (with resume), after removing result files of unfinished tasks.
    Without resume, an output that already holds results is refused rather than mixed with a new run; with it, a
    dataset made with other answer options (`run`, run_fingerprint) is refused too."""
    filesystem, root = _filesystem(out)
    made_with = _claim(filesystem, root, run)
    done = _parts(filesystem, f"{root}/summary")
    if done and not resume:
        raise InputError("the output dataset already holds results", out,
                         "add --resume to skip the photos done, or name a new output folder")
    if done and run is not None and made_with is not None and made_with != run:
        changed = sorted(k for k in set(run) | set(made_with) if run.get(k) != made_with.get(k))
        raise InputError(f"the output dataset holds answers made with other options ({', '.join(changed)})", out,
                         "resume with the options of the first run, or name a new output folder")
    for table in TABLES:
        for name in _parts(filesystem, f"{root}/{table}") - done:
            filesystem.delete_file(f"{root}/{table}/{name}")  # a task cut off between its writes: redone
    if not done:
        return set()
    return {photo_key(s) for s in read_table(out, "summary", ["source"]).column("source").to_pylist()}


# ---- inputs -----------------------------------------------------------------------------------------------------
def read_manifest(manifest: str, column: str = "path") -> List[str]:
    """Photo paths from a CSV or Parquet manifest (local or any URI pyarrow reads). Relative local paths are
    relative to the manifest's folder, as in a --list file."""
    import pyarrow.dataset as pds

    filesystem, path = _filesystem(manifest)
    fmt = "csv" if manifest.lower().endswith(".csv") else "parquet"
    try:
        table = pds.dataset(path, filesystem=filesystem, format=fmt).to_table(columns=[column])
    except Exception as exc:
        raise InputError(f"cannot read the manifest's {column!r} column ({exc})", manifest,
                         f"give a CSV or Parquet file with a {column!r} column of photo paths") from exc
    base = None if is_uri(manifest) else Path(path).parent
    paths = []
    for value in table.column(column).to_pylist():
        if value is None or not str(value).strip():
            continue
        value = str(value).strip()
        if base is not None and not is_uri(value) and not Path(value).is_absolute():
            value = str(base / value)
        paths.append(value)
    return paths


def is_manifest(item: str) -> bool:
    return item.lower().endswith(MANIFEST_SUFFIXES)


# ---- the actor --------------------------------------------------------------------------------------------------
class Predictor:
    """One Ray actor: one loaded engine; each call geolocates a batch of paths and writes its result files."""

    def __init__(self, out: str, engine_options: dict, top_k: int):
        from ..model.engine import GeoClipEngine

        self.engine = GeoClipEngine(**engine_options)
        self.engine.prepare("image", top_k)
        self.top_k = top_k
        self.out = out

    def _local(self, paths: List[str], tmp: str) -> List[str]:
        """Remote photos copied to a local temporary folder (the decoder and EXIF reader read local files)."""
        import fsspec

        local = []
        for i, p in enumerate(paths):
            if not is_uri(p):
                local.append(p)
                continue
            target = os.path.join(tmp, f"{i}{Path(p.split('?')[0]).suffix}")
            try:
                fsspec.open(p, "rb").fs.get(p, target)
            except Exception as exc:  # unreachable or missing: the engine reports the path as unreadable
                log.warning("%s: cannot fetch (%s)", p, exc)
            local.append(target)
        return local

    def __call__(self, batch: Dict[str, object]) -> Dict[str, list]:
        paths = [str(p) for p in batch["path"]]
        tables: Dict[str, List[dict]] = {t: [] for t in TABLES}
        tmp = tempfile.mkdtemp(prefix="geoclip-ray-") if any(is_uri(p) for p in paths) else None
        try:
            local = self._local(paths, tmp) if tmp else paths
            for path, res in zip(paths, self.engine.iter_predict_images(local, self.top_k)):
                if is_uri(path):
                    res.source = path
                tables["summary"].append(summary_row(res))
                if res.ok:
                    tables["predictions"] += prediction_rows(res)
                    tables["places"] += place_rows(res)
                else:
                    tables["failed"].append(failure_row(res))
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        filesystem, root = _filesystem(self.out)
        name = "part-" + hashlib.sha1("\n".join(paths).encode()).hexdigest()[:20] + ".parquet"
        for table, rows in tables.items():  # summary last
            if rows or table == "summary":
                filesystem.create_dir(f"{root}/{table}", recursive=True)
                _write(filesystem, f"{root}/{table}/{name}", arrow_table(table, rows))
        return {"source": [r["source"] for r in tables["summary"]], "status": [r["status"] for r in tables["summary"]]}


# ---- the job ----------------------------------------------------------------------------------------------------
def run_batch(
    photos: Iterable[str],
    out: str,
    engine_options: dict,
    top_k: int = 5,
    address: Optional[str] = None,
    actors: Optional[int] = None,
    actor_cpus: Optional[float] = None,
    task_photos: Optional[int] = None,
    resume: bool = False,
    max_task_retries: int = 3,
    predictor: type = Predictor,
    progress: bool = True,
) -> dict:
    """Geolocate `photos` on a Ray cluster into the dataset at `out`; returns counts and the time taken.

    address: None joins a running local cluster or starts one; "auto" or "ray://host:10001" joins that cluster.
    actors: engines to run (default: one per GPU, else one per `actor_cpus` CPUs). task_photos: photos per task
    (default 4 engine batches), the unit of retry and resume. `predictor` is the actor class (tests inject one)."""
    ray = import_ray()
    photos = list(photos)
    if address is None:  # this machine's cluster: its paths are the actors'; check before any output is touched
        preflight(engine_options, top_k)
    done = prepare_output(out, resume, run_fingerprint(engine_options, top_k))
    todo = [p for p in photos if photo_key(p) not in done] if done else photos
    report = {"photos": len(photos), "skipped": len(photos) - len(todo), "ok": 0, "failed": 0, "seconds": 0.0}
    if resume:
        log.warning("resume: %d photo(s) already done, %d to go", report["skipped"], len(todo))
    if not todo:
        return report
    if not ray.is_initialized():
        ray.init(address=address)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    if actor_cpus is None:  # a GPU actor's CPUs decode ahead of its GPU; CPU actors share the model's threads
        actor_cpus = max(1, min(8, cpus // gpus)) if gpus else max(1, min(4, cpus // 2))
    if actors is None:
        actors = gpus or max(1, int(cpus // actor_cpus))
    batch = int(engine_options.get("batch_size", 8))
    task_photos = task_photos or 4 * batch
    tasks = max(1, -(-len(todo) // task_photos))
    actors = min(actors, tasks)  # an actor without a task would only load a model
    ds = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=tasks)
    ds = ds.map_batches(
        predictor,
        fn_constructor_kwargs={"out": out, "top_k": top_k, "engine_options": {
            **engine_options, "decode_workers": engine_options.get("decode_workers") or int(actor_cpus)}},
        batch_size=task_photos,
        batch_format="numpy",
        concurrency=actors,
        num_cpus=actor_cpus,
        num_gpus=1 if gpus else 0,
        max_restarts=-1,
        max_task_retries=max_task_retries,
    )
    t0 = time.perf_counter()
    from tqdm import tqdm

    try:
        with tqdm(total=len(todo), unit="photo", disable=not progress) as bar:
            for rows in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for status in rows["status"]:
                    report["ok" if status == "ok" else "failed"] += 1
                bar.update(len(rows["status"]))
    except Exception as exc:  # an actor that cannot start (a worker node without the CLIP folder): our message
        ours = engine_error(exc)
        if ours is None:
            raise
        raise ours from None
    report["seconds"] = time.perf_counter() - t0
    return report


def preflight(engine_options: dict, top_k: int) -> None:
    """What would make every actor fail, checked once in the driver before Ray starts work or the output is
    touched: the CLIP folder is found, the weights load, the gallery loads (its cache is then the actors'), top-k
    fits it. The backbone itself is left to the actors."""
    from ..model.engine import GeoClipEngine

    GeoClipEngine(**engine_options).prepare("image", top_k, backbone=False)


def engine_error(exc: BaseException) -> Optional[GeoClipError]:
    """The engine's own error inside the exceptions Ray wraps it in (task and actor-creation errors), if any."""
    seen: Set[int] = set()
    todo: List[object] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or len(seen) > 50:
            continue
        seen.add(id(e))
        if isinstance(e, GeoClipError):
            return e
        todo += [getattr(e, name, None) for name in ("cause", "__cause__", "__context__", "creation_task_error")]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return None


def cli_inputs(inputs: List[str], recursive: bool, list_file: Optional[str], column: str = "path") -> List[str]:
    """The CLI's photo inputs (files, folders, --list) plus manifests (.csv/.parquet, local or URI)."""
    from ..io.photos import collect_photos

    manifests = [i for i in inputs if is_manifest(i)]
    rest = [i for i in inputs if not is_manifest(i)]
    photos: List[str] = []
    for m in manifests:
        photos += read_manifest(m, column)
    if rest or list_file or not photos:
        photos += collect_photos(rest, recursive, list_file)
    seen: Set[str] = set()
    return [p for p in photos if not (photo_key(p) in seen or seen.add(photo_key(p)))]
