"""Compute backends: they start and stop runner processes and never touch the store."""
