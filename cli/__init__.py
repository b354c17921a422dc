"""The terminal app, ``tinytutor``: ``main`` (the parser and its commands), ``demo`` (the whole class flow
offline) and ``tables`` (what they print). It sits beside the Discord bot, on the same runtime
(``service.runtime``): the database, the service and the scheduler, built from settings."""

from .main import main

__all__ = ["main"]
