"""File names that are not UTF-8, written so that they read back.

On Linux a name is bytes; Python hands an undecodable byte to us as a lone surrogate (b'caf\\xe9.jpg' is
'caf\\udce9.jpg', PEP 383). Such a string cannot be encoded to UTF-8, which every text format insists on, so the
result writers used to die with UnicodeEncodeError after all the work. The rule, per format:

- CSV (bytes-capable): written and read with errors='surrogateescape', so the cell holds the name's own bytes,
  exactly what `ls` shows, and reads back to the same str (core/io/results.py _write_csv / read_csv_rows).
- the journal: JSON with ASCII escapes ('\\udce9'), which json reads back to the same str.
- GeoPackage and GeoJSON (UTF-8 only): `to_text` writes such a name with the usual escaping, each undecodable
  byte as \\xNN and each backslash as two ('caf\\xe9.jpg'), and `from_text` reads it back. A name that is valid
  UTF-8 is written as it is, so the reverse is applied only when it round-trips (to_text of the result is the
  text), and only on POSIX (on Windows, C:\\xe9tude is an ordinary folder). What it cannot tell apart: a valid
  POSIX name whose text is exactly the escaping of an undecodable one (it holds '\\xNN' with NN >= 80 and no
  single backslash); it reads back as that name (on resume without a journal the photo is geolocated again,
  never lost).
"""

from __future__ import annotations

import os
import re

_TOKEN = re.compile(r"\\\\|\\x[0-9a-f]{2}|\\")


def to_text(value: str) -> str:
    """`value` as valid Unicode text: unchanged when it is; else its backslashes doubled and its undecodable bytes
    as \\xNN escapes (the usual escaping, so two different names never give the same text)."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.replace("\\", "\\\\").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def from_text(text: str) -> str:
    """The name `to_text` wrote: escapes back to what they stood for, when (and only when) `to_text` would have
    written exactly this text for the result; any other text comes back unchanged."""
    if os.name == "nt" or "\\x" not in text:
        return text

    def one(m: re.Match) -> str:
        tok = m.group(0)
        if tok == "\\\\":
            return "\\"
        if len(tok) == 4 and int(tok[2:], 16) >= 0x80:
            return chr(0xDC00 + int(tok[2:], 16))
        raise ValueError(tok)  # not something to_text writes

    try:
        name = _TOKEN.sub(one, text)
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    except (ValueError, UnicodeError):
        return text
    return name if name != text and to_text(name) == text else text
