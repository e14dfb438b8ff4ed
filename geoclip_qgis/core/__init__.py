"""The GeoCLIP engine: torch, transformers, numpy, rasterio, Pillow; never qgis or PyQt.

Nothing heavy is imported here, so `python -m geoclip_qgis.core.service.worker` and the CLI start fast and the
QGIS side can import `geoclip_qgis` without pulling torch in.
"""

from .. import __version__  # metadata.txt, read by the package (standard library only)

__all__ = ["__version__"]
