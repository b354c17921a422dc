"""The instructor dashboard: the class on one web page (aiohttp.web and Jinja2, no JavaScript build).

It only translates, as the bot's cogs do: every page and action calls the service with the signed-in
instructor as the caller, so the rules (the instructor rule, one class only, quotas) are the bot's.
``web.app.make_app(service, settings)`` builds the application; the bot serves it in its own event
loop when ``[web].enabled``, and ``tinytutor web`` serves it alone against the same database.
"""
