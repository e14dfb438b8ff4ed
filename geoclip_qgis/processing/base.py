"""What every GeoCLIP algorithm shares: advanced engine parameters, the worker call with progress and cancel,
and readable errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProperty,
    QgsRectangle,
)
from qgis.PyQt.QtGui import QIcon

from ..client.engine_client import EngineError, WorkerCrashed, engine_defaults, shared_client
from ..client.messages import ran_on_parts
from ..i18n import tr, tr_noop  # noqa: F401 - tr_noop re-exported for the algorithms
from ..layers.aoi import NoPolygon, aoi_geojson
from ..shared import defaults, geopackage

# The one device list (shared/defaults.py): index 0 is "the plugin's setting" (sends nothing), then every device
# with 'auto' last, so that the indices saved in models and batch files before keep their meaning (1 CPU, 2 CUDA,
# 3 Apple GPU).
_ORDER = [d for d in defaults.DEVICES if d[0] != "auto"] + [d for d in defaults.DEVICES if d[0] == "auto"]
DEVICES = ["", *(v for v, _ in _ORDER)]
DEVICE_LABELS = [tr_noop("Plugin setting (automatic unless set)"), *(label for _, label in _ORDER)]
# The one precision list (shared/defaults.py), after "the plugin's setting" (sends nothing).
PRECISIONS = ["", *defaults.PRECISION_VALUES]
PRECISION_LABELS = [tr_noop("Plugin setting (automatic unless set)"), *(label for _, label in defaults.PRECISIONS)]
# Our layer in a GeoPackage that already exists (issue 11): the other layers of the file are kept.
GPKG_LAYERS = {"OUTPUT": "geoclip_predictions", "PLACES": "geoclip_predictions_places",
               "SUMMARY": "geoclip_predictions_summary", "FAILED": "geoclip_failed", "REGIONS": "geoclip_regions"}


def ran_on_text(ran_on: Dict[str, Any]) -> str:
    """"Ran on CPU in fp32: …reason…": the engine's device and precision with the reason, as the worker said them."""
    return tr("Ran on {} in {}: {}").format(*ran_on_parts(ran_on))


def gpkg_layer_uri(path: str, layer: str) -> str:
    """A Processing destination that adds or replaces one layer in a GeoPackage and keeps every other layer."""
    return "ogr:dbname='{}' table=\"{}\" (geom)".format(path.replace("'", "''"), layer.replace('"', '""'))


def gpkg_target(dest: Optional[str]):
    """(GeoPackage path, layer) of a sink's destination id (`x.gpkg|layername=L` or an `ogr:` URI), else None."""
    import re

    if not dest:
        return None
    m = re.match(r"""^ogr:dbname='(.*)' table="(.*)" \(geom\)$""", dest)
    if m:
        return m.group(1).replace("''", "'"), m.group(2).replace('""', '"')
    path, _, rest = dest.partition("|")
    m = re.search(r"layername=([^|]+)", rest)
    if path.lower().endswith(".gpkg") and m:
        return path, m.group(1)
    return None


def _destination_text(value: Any) -> Optional[str]:
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        prop = value.sink
        return prop.staticValue() if prop.propertyType() == QgsProperty.Type.StaticProperty else None
    return value if isinstance(value, str) else None
ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"
# The Toolbox's groups under GeoCLIP: what an analyst wants to do.
GROUPS = {"geolocation": tr_noop("Geolocation"), "maps": tr_noop("Maps"), "fields": tr_noop("Location fields")}
HELP_URL = "https://github.com/geoclip-qgis/geoclip-qgis#in-qgis"  # the README's "In QGIS" section


class GeoClipAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses define `_name`, `_display`, `_help`, `initAlgorithm` and `processAlgorithm`."""

    _name = ""
    _display = ""
    _help = ""
    _group = ""  # one of GROUPS' keys

    def name(self) -> str:
        return self._name

    def displayName(self) -> str:
        return tr(self._display)

    def group(self) -> str:
        return tr(GROUPS.get(self._group, "")) if self._group else ""

    def groupId(self) -> str:
        return self._group

    def helpUrl(self) -> str:  # noqa: N802 - Qt naming
        return HELP_URL

    def shortHelpString(self) -> str:
        return tr(self._help)

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def createInstance(self):
        return type(self)()

    def tr(self, text: str) -> str:  # noqa: D401 - Qt naming
        return tr(text)

    # ---- shared parameters ------------------------------------------------------------------------------------
    def add_advanced(self, param) -> None:
        param.setFlags(param.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(param)

    def add_engine_parameters(self, top_k: bool = True, gallery: bool = True, clip: bool = True) -> None:
        if top_k:
            self.addParameter(QgsProcessingParameterNumber(
                "TOP_K", tr("Predictions per input (top-k)"), QgsProcessingParameterNumber.Type.Integer, 5, False, 1,
                100000))
        self.add_advanced(QgsProcessingParameterEnum("DEVICE", tr("Device"), [tr(d) for d in DEVICE_LABELS],
                                                     defaultValue=0))
        self.add_advanced(QgsProcessingParameterEnum(
            "PRECISION", tr("Precision (auto: the fastest that passes the fidelity gate on this machine)"),
            [tr(p) for p in PRECISION_LABELS], defaultValue=0))
        if gallery:
            self.add_advanced(QgsProcessingParameterString(
                "GALLERY", tr("GPS gallery: 'default' (100K Flickr points), 'fibonacci:N', or a CSV path"),
                "default"))
        if clip:
            self.add_advanced(QgsProcessingParameterFile(
                "CLIP_PATH", tr("CLIP ViT-L/14 folder (empty: plugin setting / Hugging Face cache)"),
                behavior=QgsProcessingParameterFile.Behavior.Folder, optional=True))
        self.add_advanced(QgsProcessingParameterFile(
            "WEIGHTS", tr("GeoCLIP weights folder (empty: the geoclip package's)"),
            behavior=QgsProcessingParameterFile.Behavior.Folder, optional=True))

    def add_extent_parameters(self, default_res: float) -> None:
        self.addParameter(QgsProcessingParameterExtent("EXTENT", tr("Extent (empty: the whole world)"),
                                                       optional=True))
        self.addParameter(QgsProcessingParameterNumber("RESOLUTION", tr("Cell size (degrees)"),
                                                       QgsProcessingParameterNumber.Type.Double, default_res, False,
                                                       0.001, 45.0))

    def engine_options(self, parameters, context) -> Dict[str, Any]:
        """The plugin settings' canonical engine options (engine_client.engine_defaults, what the dock and the map
        tool send too), overridden by this run's parameters where given: the same settings never reload the model
        when one switches between the dock and Processing. Device "Plugin setting" keeps the setting (cuda:1…)."""
        overrides: Dict[str, Any] = {}
        device = self.parameterAsEnum(parameters, "DEVICE", context) if self.parameterDefinition("DEVICE") else 0
        if device:
            overrides["device"] = DEVICES[device]
        precision = self.parameterAsEnum(parameters, "PRECISION", context) if self.parameterDefinition("PRECISION") \
            else 0
        if precision:
            overrides["precision"] = PRECISIONS[precision]
        if self.parameterDefinition("GALLERY") is not None:
            gallery = self.parameterAsString(parameters, "GALLERY", context)
            if gallery and gallery != "default":
                overrides["gallery"] = gallery
        for key, param in (("clip_path", "CLIP_PATH"), ("weights", "WEIGHTS")):
            value = self.parameterAsString(parameters, param, context) if self.parameterDefinition(param) else ""
            if value:
                overrides[key] = value
        return engine_defaults(**overrides)

    # ---- area of interest, safe GeoPackage outputs ----------------------------------------------------------------
    def add_aoi_parameter(self) -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(
            "AOI", tr("Area of interest (polygons; the answer is restricted to them)"),
            [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))

    def aoi_geojson(self, parameters, context) -> Optional[Dict[str, Any]]:
        """The AOI layer's polygons (selected features only when asked), unioned and transformed to EPSG:4326, as a
        GeoJSON geometry for the worker's `aoi`; None without an AOI."""
        if not parameters.get("AOI"):
            return None
        source = self.parameterAsSource(parameters, "AOI", context)
        if source is None:
            return None
        try:  # the one conversion (layers/aoi.py), as the dock's
            return aoi_geojson(source.getFeatures(), source.sourceCrs(), context.transformContext())
        except NoPolygon:
            raise QgsProcessingException(tr("The area of interest has no polygon.")) from None

    def safe_destination(self, parameters: Dict[str, Any], name: str) -> Dict[str, Any]:
        """Issue 11: QGIS's sink for a plain `x.gpkg` destination replaces the whole file, deleting the user's other
        layers. When that file already exists (the user's, or one an earlier output of this run created), the
        destination becomes `ogr:dbname='x.gpkg' table="geoclip_…"`: our layer is added or replaced, nothing else
        is touched."""
        value = parameters.get(name)
        text = _destination_text(value)
        if not text or not text.lower().endswith(".gpkg") or not os.path.isfile(text):
            return parameters
        layer = GPKG_LAYERS.get(name, "geoclip_" + name.lower())
        problems = geopackage.refusals(text, [layer])  # the one GeoPackage policy: never the user's layer
        if problems:
            raise QgsProcessingException(tr("{}: {}. Choose another file.").format(Path(text).name,
                                                                                   "; ".join(problems)))
        uri = gpkg_layer_uri(text, layer)
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            new = QgsProcessingOutputLayerDefinition(value)
            new.sink = QgsProperty.fromValue(uri)
        else:
            new = uri
        return {**parameters, name: new}

    def sink(self, parameters, name: str, context, fields, wkb, crs):
        """parameterAsSink through safe_destination: (sink or None, destination id)."""
        sink, dest = self.parameterAsSink(self.safe_destination(parameters, name), name, context, fields, wkb, crs)
        target = gpkg_target(dest)
        if sink is not None and target:
            self.__dict__.setdefault("_sinks_to_mark", []).append((sink, target))
        return sink, dest

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802
        """Close our GeoPackage sinks and mark their layers as ours (shared/geopackage.py), so the CLI, the dock and
        a later run recognise them; a sink still open would hold the write."""
        from qgis.PyQt import sip

        self._distinct_output_names(context)
        for sink, (path, layer) in self.__dict__.pop("_sinks_to_mark", []):
            try:
                if not sip.isdeleted(sink):
                    sink.flushBuffer()
                    sip.delete(sink)
                geopackage.mark(path, layer)
            except Exception as exc:  # the layer stays usable; only a later overwrite would be refused
                feedback.reportError(tr("Could not mark {} as a GeoCLIP layer: {}").format(layer, exc))
        return {}

    def _distinct_output_names(self, context) -> None:
        """Each output of this run loaded under its own name: its description (the files' names, one GeoPackage
        for several outputs, would repeat), and "(2)" after one that two outputs still share."""
        seen: Dict[str, int] = {}
        for dest in list(context.layersToLoadOnCompletion().keys()):
            details = context.layerToLoadOnCompletionDetails(dest)
            param = self.parameterDefinition(details.outputName) if details.outputName else None
            if param is None:
                continue
            name = details.name or param.description()
            if gpkg_target(dest) and details.name in ("", os.path.splitext(os.path.basename(
                    dest.split("|")[0]))[0]):
                name = param.description()
            seen[name] = seen.get(name, 0) + 1
            details.name = name if seen[name] == 1 else f"{name} ({seen[name]})"

    def extent_wsen(self, parameters, context) -> Optional[list]:
        """The extent in EPSG:4326 as W, S, E, N, or None for the world."""
        if not parameters.get("EXTENT"):
            return None
        rect: QgsRectangle = self.parameterAsExtent(parameters, "EXTENT", context)
        crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        if crs.isValid() and crs != wgs84:
            rect = QgsCoordinateTransform(crs, wgs84, context.transformContext()).transformBoundingBox(rect)
        w, s, e, n = rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()
        return [max(-180.0, w), max(-90.0, s), min(180.0, e), min(90.0, n)]

    # ---- the engine call --------------------------------------------------------------------------------------
    def run_engine(self, op: str, params: Dict[str, Any], feedback: QgsProcessingFeedback,
                   on_row: Optional[Callable[[Dict[str, Any]], None]] = None,
                   keep_partial: bool = False) -> Dict[str, Any]:
        """Call the worker; progress and cancel go through `feedback`. A crash keeps rows already delivered when
        `keep_partial` (they are in the sink); otherwise it fails the algorithm with the reason."""

        def progress(done: int, total: int, message: str) -> None:
            if total:
                feedback.setProgress(100.0 * done / total)
            if message:
                feedback.setProgressText(message)

        try:
            out = shared_client().call(op, params, on_progress=progress, on_row=on_row,
                                       is_cancelled=feedback.isCanceled, on_waiting=feedback.pushInfo)
            if isinstance(out, dict) and isinstance(out.get("ran_on"), dict):
                feedback.pushInfo(ran_on_text(out["ran_on"]))
            return out
        except WorkerCrashed as exc:
            feedback.reportError(f"{exc} {exc.info.get('hint') or ''}".strip(), False)
            if exc.info.get("details"):
                feedback.pushDebugInfo(str(exc.info["details"]))
            if keep_partial:
                return {"crashed": True, "message": str(exc)}
            raise QgsProcessingException(str(exc)) from exc
        except EngineError as exc:
            hint = exc.info.get("hint")
            text = str(exc) if not hint or hint in str(exc) else f"{exc}\n{hint}"
            raise QgsProcessingException(text) from exc
