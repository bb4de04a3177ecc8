"""Stores of samples and health. ``open_store(site)`` picks the one the site file names."""
