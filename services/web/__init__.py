"""The REST API's HTTP server: an asyncio front end (h11) that owns every connection and
hands whole requests to worker threads running the Flask app (see services.web.api_server)."""
