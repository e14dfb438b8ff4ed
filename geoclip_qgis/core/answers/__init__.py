"""Answers from scores: distinct places, their names, confidence regions, areas of interest."""
