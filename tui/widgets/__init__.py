"""Reusable widgets of the mlbox TUI."""
