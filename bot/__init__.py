"""The top floor: the Discord bot (``app``, ``cogs``, ``announcer``, ``progress``, ``render``), and the
``tinytutor`` terminal app (``cli``, ``demo``, ``tables``), both built on ``runtime`` (the database, the service
and the scheduler from settings)."""
