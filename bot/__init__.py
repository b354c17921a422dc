"""The application: settings, the ``tinytutor`` command line, and (next) the service and Discord cogs."""
