"""Synthetic users and speech that drive the real pipeline (ground truth for measuring learning)."""
