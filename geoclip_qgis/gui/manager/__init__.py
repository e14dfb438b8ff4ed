"""The engine and models manager."""
