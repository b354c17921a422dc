"""Storage: ORM models, engine and sessions, queries, and the artefact store. No discord, no torch."""
