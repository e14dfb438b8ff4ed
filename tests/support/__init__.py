"""Test fixtures that never ship in the plugin zip."""
