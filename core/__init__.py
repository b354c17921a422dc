"""The ground floor every layer shares, importing nothing else of the project: the error hierarchy
(``errors``), the training spec (``spec``: what one run is, and its defaults) and the typed settings
(``settings``: config.toml and the environment)."""
