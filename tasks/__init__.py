"""Celery background work for Examwire (results persistence, expiry sweeps, analytics, exports).

Tasks take ids, re-read state, and are idempotent.
"""
