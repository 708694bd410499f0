"""Prefect Blocks: configuration and secrets only, never workflow logic."""
