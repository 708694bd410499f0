"""openbill: the billing engine. Pure domain, persistence, documents, payments and CLI.

Nothing in this package imports Prefect: every operation can be called from plain Python.
"""
