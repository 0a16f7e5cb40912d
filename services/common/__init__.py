"""Small helpers every adapter shares: log setup with the peer's short ID (``logs``),
rate-limited logging keyed by caller (``log_limits``) and signal handling that keeps
Ctrl-C on the main thread (``signals``). Imports only the standard library.
"""
