"""The REST API's HTTP server: an asyncio front end (h11) that owns every connection and
hands whole requests to worker threads running the Flask app (see services.web.api_server).
May import h11, Flask and werkzeug, and of services/ only services.rest.errors (the error
codes of its own answers) and services.dav.options (which paths are the WebDAV share's)."""
