"""Widgets of the main, review and log screens."""
