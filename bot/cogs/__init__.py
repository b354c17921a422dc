"""Cogs: each turns interactions into service calls and service results into messages."""
