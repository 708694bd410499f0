"""Persistence: models, column types, engine and unit of work, bulk SQL, migrations."""
