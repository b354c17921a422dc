"""Alembic migrations for storage.models (run by storage.db.Database.upgrade)."""
