"""Offline voice assistant that learns from its own mistakes."""

__version__ = "0.1.0"
