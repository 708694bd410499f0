"""Prefect flows: one flow per file, named after the flow. No SQL and no arithmetic here."""
