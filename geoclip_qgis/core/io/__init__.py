"""Files in and out: photo listing and decoding, result tables and journals, atomic writes, downloads."""
