"""Connectors: one folder per protocol behind one small contract (connectors.base)."""
