"""One translation entry point for every user-visible string of the plugin, and the translator for the user's
language (geoclip_qgis/i18n/geoclip_qgis_<lang>.qm, compiled from the .ts made by scripts/update_translations.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.PyQt.QtCore import QCoreApplication, QTranslator

CONTEXT = "GeoCLIP"  # every string has this one context, so the .ts is one flat list
I18N_DIR = Path(__file__).resolve().parent / "i18n"


def tr(text: str) -> str:
    return QCoreApplication.translate(CONTEXT, text)


def plural(n: int, one: str, many: str) -> str:
    """The translated template for `n` things, `one` or `many`, still to be formatted: plural(n, "{} photo",
    "{} photos").format(n). Qt's %n plurals would need a numerus .ts; two plain strings keep the one flat list
    (scripts/update_translations.py extracts both forms)."""
    return QCoreApplication.translate(CONTEXT, one if n == 1 else many)


def tr_noop(text: str) -> str:
    """Marks a string for extraction that is translated later, where it is shown (class attributes, tables)."""
    return text


def user_language() -> str:
    """QGIS's interface language ('fr' of 'fr_FR'): the override in the settings when set, else the system's."""
    from qgis.core import QgsApplication, QgsSettings

    locale = QgsSettings().value("locale/userLocale", "") or QgsApplication.locale() or ""
    return str(locale)[:2].lower()


def install_translator(language: Optional[str] = None) -> Optional[QTranslator]:
    """Installs the plugin's translation for `language` (default: QGIS's) when one is shipped; keep the returned
    object and pass it to QCoreApplication.removeTranslator on unload."""
    qm = I18N_DIR / f"geoclip_qgis_{language or user_language()}.qm"
    if not qm.is_file():
        return None
    translator = QTranslator()
    if not translator.load(str(qm)):
        return None
    QCoreApplication.installTranslator(translator)
    return translator
