"""What every GeoCLIP algorithm shares: advanced engine parameters, the worker call with progress and cancel,
and readable errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsRectangle,
)
from qgis.PyQt.QtGui import QIcon

from ..engine_client import EngineError, WorkerCrashed, engine_defaults, shared_client
from ..i18n import tr, tr_noop  # noqa: F401 - tr_noop re-exported for the algorithms

DEVICES = ["auto", "cpu", "cuda"]
ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"


class GeoClipAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses define `_name`, `_display`, `_help`, `initAlgorithm` and `processAlgorithm`."""

    _name = ""
    _display = ""
    _help = ""

    def name(self) -> str:
        return self._name

    def displayName(self) -> str:
        return tr(self._display)

    def group(self) -> str:
        return ""

    def groupId(self) -> str:
        return ""

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
        self.add_advanced(QgsProcessingParameterEnum("DEVICE", tr("Device"), DEVICES, defaultValue=0))
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
        """The plugin settings' engine options, overridden by this run's parameters where given."""
        opts: Dict[str, Any] = {**engine_defaults(),
                                "device": DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)]}
        if self.parameterDefinition("GALLERY") is not None:
            opts["gallery"] = self.parameterAsString(parameters, "GALLERY", context) or "default"
        for key, param in (("clip_path", "CLIP_PATH"), ("weights", "WEIGHTS")):
            value = self.parameterAsString(parameters, param, context) if self.parameterDefinition(param) else ""
            if value:
                opts[key] = value
        return opts

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
            return shared_client().call(op, params, on_progress=progress, on_row=on_row,
                                        is_cancelled=feedback.isCanceled)
        except WorkerCrashed as exc:
            feedback.reportError(tr("The GeoCLIP engine stopped: {}").format(exc.info.get("hint") or exc), False)
            if keep_partial:
                return {"crashed": True, "message": str(exc)}
            raise QgsProcessingException(str(exc)) from exc
        except EngineError as exc:
            hint = exc.info.get("hint")
            text = str(exc) if not hint or hint in str(exc) else f"{exc}\n{hint}"
            raise QgsProcessingException(text) from exc
