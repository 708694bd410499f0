"""Pure values and rules: money, periods, prices, schedules, tax, invoice arithmetic.

No SQLAlchemy here (an import-linter contract in ``make lint`` holds it).
"""
