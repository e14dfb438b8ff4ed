"""The run's journal, its manifest: the options that make rows comparable, the outputs in canonical order, every
finished row (JSON lines, fsynced per query). It is the only file written while a batch runs; at the end every output
is written whole from it (core/io/results.py), so a crash keeps every finished row and changes no output, and
`--resume` continues it. The journal is kept after the run: it is the record of which options made the outputs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ...shared import geopackage
from ..errors import InputError
from .files import atomic_output
from .plan import IOPlan
from .results import (
    DEFAULT_LAYER,
    FAILURE_FIELDS,
    FORMATS,
    TABLES,
    Output,
    failure_row,
    has_results,
    place_rows,
    prediction_rows,
    read_csv_rows,
    read_vector_rows,
    source_key,
    summary_row,
    write_output,
)

log = logging.getLogger("geoclip_qgis")
JOURNAL_VERSION = 2  # 2: the header lists outputs in canonical order; version 1 journals are still read


def plan_outputs(paths: Sequence[os.PathLike | str], layer: Optional[str] = None,
                 table: str = "ranks", plan: Optional[IOPlan] = None, failed: bool = True) -> List[Output]:
    """Declare a run's result outputs (and the failed-photos list and journal beside them) in the run's I/O plan,
    and check the plan unless the caller still has outputs to add (`plan` given). The same file named twice is
    written once. Nothing is created or changed here."""
    if table not in TABLES:
        raise InputError(f"unknown table {table!r}", hint=f"use one of {', '.join(TABLES)}")
    outs: List[Output] = []
    seen: Set[str] = set()
    own = plan is None
    plan = plan if plan is not None else IOPlan()
    for raw in paths:
        p = Path(raw).expanduser()
        driver = FORMATS.get(p.suffix.lower())
        if driver is None:  # the plan says it, beside any other problem (an output named as an input, say)
            plan.write(p, "output", "table")
            continue
        out = Output(p, driver, (layer or DEFAULT_LAYER) if driver == "GPKG" else None, table)
        if out.key in seen:
            log.warning("%s: named twice, written once", p)
            continue
        seen.add(out.key)
        outs.append(out)
        plan.write(p, "output", "table", list(out.layers().values()) if driver == "GPKG" else ())
    if outs and failed:
        first = canonical_first(outs)
        plan.write(failed_path(first.path), "failed-photos list", "failed")
        jpath = journal_path(first.path)
        plan.write(jpath, "run journal", "journal")
        plan.trust(_journal_outputs(jpath))
    if own:
        plan.check()
    return outs


def canonical_first(outs: Sequence[Output]) -> Output:
    """The output the journal and the failed list sit beside: the first in a canonical order, so the order of
    `-o` options never changes where a run's record is (a resume with the two `-o` swapped finds it)."""
    return min(outs, key=lambda o: o.key)


def _journal_outputs(jpath: Path) -> List[str]:
    """The outputs an existing journal of ours says it wrote (they are ours to replace)."""
    try:
        with open(jpath, "rb") as fh:
            head = json.loads(fh.readline(1 << 20).decode("utf-8"))
        return [str(p) for p in head.get("outputs", [])] if isinstance(head, dict) and "journal" in head else []
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return []


def failed_path(out: os.PathLike | str) -> Path:
    """Photos that could not be read are listed next to the first output, with the reason."""
    p = Path(out)
    return p.with_name(p.stem + ".failed.csv")


def journal_path(first_output: Path) -> Path:
    return first_output.with_name(f".{first_output.name}.geoclip-run.jsonl")


# ---- the run -----------------------------------------------------------------------------------------------------
class ResultWriter:
    """The outputs of one CLI run: `open` (after the models are loaded), `add` per query, `finish` at the end.

    The journal is the run's manifest: its header holds the options that make rows comparable, the outputs in
    canonical order, and every finished row follows. `--resume` rebuilds every output from it, refuses other
    options with the reason, retries the inputs that failed (a photo unreadable then may be readable now), and
    reads a foreign or damaged line as an error naming the line."""

    def __init__(self, outputs: List[Output], resume: bool = False):
        self.outputs = outputs
        self.resume = resume
        first = canonical_first(outputs) if outputs else None
        self.failed = failed_path(first.path) if first else None
        self.journal = journal_path(first.path) if first else None
        self.rows: List[dict] = []
        self.places: List[dict] = []
        self.summary: List[dict] = []
        self.failures: List[dict] = []
        self.done: Set[str] = set()
        self.fingerprint: Dict[str, object] = {}
        self._fh = None

    @classmethod
    def plan(cls, paths: Sequence[os.PathLike | str], resume: bool = False, layer: Optional[str] = None,
             table: str = "ranks", plan: Optional[IOPlan] = None):
        return cls(plan_outputs(paths, layer, table, plan), resume)

    # -- resume state (read only) --
    def load_previous(self, fingerprint: Dict[str, object]) -> Set[str]:
        """With --resume: what earlier runs finished, from the journal or else the outputs. Reads only; refuses a
        journal written with other options. Failed inputs are not 'done': they are tried again."""
        self.fingerprint = dict(fingerprint)
        if not self.resume or not self.outputs:
            return set()
        header, entries = self._read_journal()
        if header is not None:
            old = header.get("fingerprint", {})
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            if diff:
                said = ", ".join(f"{k}: {old.get(k)!r} then, {fingerprint.get(k)!r} now" for k in diff)
                raise InputError(f"cannot resume: the earlier run used other options ({said})", str(self.journal),
                                 "run with the same options, or without --resume to start over")
            for entry in entries:
                self._absorb(entry)
        else:
            self._seed_from_outputs()
        self.done = {source_key(r["source"], r.get("kind", "image")) for r in self.rows}
        return self.done

    def _absorb(self, entry: dict) -> None:
        """Add one journal entry; a new answer for an input replaces its earlier failure (a retried photo)."""
        keys = {source_key(r["source"], r.get("kind", "image")) for r in entry.get("summary", []) + entry["rows"]}
        if keys:
            self.failures = [r for r in self.failures if source_key(r["source"]) not in keys]
            self.summary = [r for r in self.summary if source_key(r["source"], r.get("kind", "image")) not in keys]
        (self.rows if entry["t"] == "rows" else self.failures).extend(entry["rows"])
        self.places.extend(entry.get("places", []))
        self.summary.extend(entry.get("summary", []))

    def _read_journal(self) -> Tuple[Optional[dict], List[dict]]:
        path = self._existing_journal()
        if path is None:
            return None, []
        from .files import open_regular

        with open_regular(path, "run journal") as fh:
            data = fh.read()
        lines = data.split(b"\n")
        if lines and lines[-1]:
            log.warning("%s: the last entry was cut off by an interrupted run; it is dropped", path)
        entries = []
        hint = "delete it and run without --resume"
        for n, line in enumerate(lines[:-1], start=1):
            try:
                entry = json.loads(line.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"the run journal is damaged at line {n}", str(path), hint) from None
            if n == 1:
                if not isinstance(entry, dict) or entry.get("journal") not in (1, JOURNAL_VERSION):
                    raise InputError("not a GeoCLIP run journal (line 1 is not its header)", str(path), hint)
            elif not (isinstance(entry, dict) and entry.get("t") in ("rows", "failed")
                      and isinstance(entry.get("rows"), list) and all(isinstance(r, dict) for r in entry["rows"])
                      and all(isinstance(r, dict) and "source" in r for r in entry["rows"] + entry.get("summary", []))
                      and isinstance(entry.get("places", []), list) and isinstance(entry.get("summary", []), list)):
                raise InputError(f"the run journal has a line that is not ours at line {n}", str(path), hint)
            entries.append(entry)
        if not entries:
            raise InputError("not a GeoCLIP run journal (it is empty)", str(path), hint)
        if path != self.journal:
            log.warning("%s: read the journal of an earlier version's run", path)
        return entries[0], entries[1:]

    def _existing_journal(self) -> Optional[Path]:
        """This run's journal; else one an earlier version left beside another of the outputs."""
        if self.journal is not None and self.journal.is_file():
            return self.journal
        for out in self.outputs:
            old = journal_path(out.path)
            if old.is_file():
                return old
        return None

    def _seed_from_outputs(self) -> None:
        """No journal (deleted, or outputs made by hand): read back every table the outputs need, or refuse when
        an earlier table cannot be rebuilt (a CSV of the ranks holds no places and no summary)."""
        have: Dict[str, Tuple[Output, Optional[str]]] = {}
        for o in sorted((o for o in self.outputs if has_results(o)),
                        key=lambda o: ["GPKG", "CSV", "GeoJSON"].index(o.driver)):
            if o.driver == "GPKG":
                for table, layer in o.layers().items():
                    if _has_layer(o, layer):
                        have.setdefault(table, (o, layer))
            else:
                have.setdefault(o.table, (o, None))
        if not have:
            return
        need = set()
        for o in self.outputs:
            need |= set(TABLES) if o.driver == "GPKG" else {o.table}
        missing = sorted(need - set(have))
        if missing:
            raise InputError(f"cannot resume: the run journal is gone and the outputs hold no {' or '.join(missing)} "
                             "table of the earlier run, so it cannot be rebuilt", str(self.outputs[0].path),
                             "run without --resume to start over")
        tables = {}
        for table, (o, layer) in have.items():
            fields = TABLES[table]
            tables[table] = read_csv_rows(o.path, fields) if o.driver == "CSV" else \
                read_vector_rows(Output(o.path, o.driver, layer or o.layer, table), fields)
        self.rows = tables.get("ranks", [])
        self.places = tables.get("places", [])
        self.summary = tables.get("summary", [])
        ranks = {r["rank"] for r in self.rows if r.get("rank")}
        want = self.fingerprint.get("top_k")
        if ranks and want is not None and max(ranks) != want:
            raise InputError(f"cannot resume: the earlier results have top-k {max(ranks)}, this run {want}",
                             str(self.outputs[0].path), f"run with --top-k {max(ranks)}, or without --resume")
        log.warning("%s: no run journal, so the earlier run's gallery and weights cannot be checked; "
                    "resuming on the assumption that they were the same", self.outputs[0].path)
        if self.failed is not None and self.failed.is_file():
            self.failures = read_csv_rows(self.failed, FAILURE_FIELDS)
        failed = {source_key(r["source"]) for r in self.failures}
        self.summary = [r for r in self.summary if source_key(r["source"], r.get("kind", "image")) not in failed]

    # -- writing --
    def open(self) -> None:
        """Start (or continue) the journal: the first write of the run, made once the models are loaded."""
        if self.journal is None:
            return
        # The one atomic writer: our own temporary (what a killed run's rewrite left is swept), fsync, rename.
        with atomic_output(self.journal, "journal") as tmp, open(tmp, "wb") as fh:
            header = {"journal": JOURNAL_VERSION, "fingerprint": self.fingerprint,
                      "outputs": sorted(str(o.path.resolve()) for o in self.outputs)}
            fh.write(json.dumps(header).encode() + b"\n")
            if self.rows or self.places or self.summary:
                entry = {"t": "rows", "rows": self.rows, "places": self.places, "summary": self.summary}
                fh.write(json.dumps(entry).encode() + b"\n")
            if self.failures:
                fh.write(json.dumps({"t": "failed", "rows": self.failures}).encode() + b"\n")
        self._fh = open(self.journal, "ab")  # noqa: SIM115 - lives with the run

    def _append(self, entry: dict) -> None:
        if self._fh is None:
            return
        try:
            self._fh.write(json.dumps(entry).encode() + b"\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise InputError(f"cannot record results ({exc.strerror or exc})", str(self.journal),
                             "free some disk space, then run again with --resume") from exc

    def add(self, result) -> List[dict]:
        """Record one finished query durably; returns its rows."""
        summary = [summary_row(result)]
        if result.ok:
            rows, places = prediction_rows(result), place_rows(result)
            entry = {"t": "rows", "rows": rows, "places": places, "summary": summary}
        else:
            rows = []
            entry = {"t": "failed", "rows": [failure_row(result)], "summary": summary}
        self._absorb(entry)
        self._append(entry)
        return rows

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> None:
        """Write every output whole from the rows of this run (and, with --resume, the earlier ones)."""
        self.close()
        meta = {"GEOCLIP_RUN": json.dumps(self.fingerprint, sort_keys=True)}
        tables = {"ranks": self.rows, "places": self.places, "summary": self.summary}
        for out in self.outputs:
            if out.driver == "GPKG":
                for table, layer in out.layers().items():
                    write_output(out, TABLES[table], tables[table], meta, layer)
            else:
                write_output(out, TABLES[out.table], tables[out.table], meta)
        if self.failed is not None and (self.failures or self.failed.exists()):
            write_output(Output(self.failed, "CSV"), FAILURE_FIELDS, self.failures)


def _has_layer(out: Output, layer: str) -> bool:
    return layer in geopackage.layer_names(str(out.path))
