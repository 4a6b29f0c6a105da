"""Screens: main (tree, approvals, details, charts, live log), diff review, log viewer, help, dialogs, setup."""
