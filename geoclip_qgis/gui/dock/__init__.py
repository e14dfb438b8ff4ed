"""The GeoCLIP panel."""
