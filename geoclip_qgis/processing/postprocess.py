"""Styles applied when Processing loads an output layer (QgsProcessingLayerPostProcessorInterface)."""

from __future__ import annotations

from typing import Callable, List

from qgis.core import QgsProcessingLayerPostProcessorInterface


class StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    _alive: List[StyleOnLoad] = []  # Processing keeps only a C++ pointer: Python must hold the object

    def __init__(self, apply: Callable):
        super().__init__()
        self.apply = apply

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 - Qt naming
        self.apply(layer)

    @classmethod
    def attach(cls, context, dest_id: str, apply: Callable) -> None:
        if dest_id and context.willLoadLayerOnCompletion(dest_id):
            inst = cls(apply)
            cls._alive.append(inst)
            context.layerToLoadOnCompletionDetails(dest_id).setPostProcessor(inst)
