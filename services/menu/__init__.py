"""Console menu of a running peer (run_node.py shows it when stdin is a terminal).

app.py: the loop, prompts and actions; tables.py: pure renderers; transfers.py: streamed
uploads and downloads with a progress bar, cancellable with Ctrl-C. May import chord/,
services.files, services.peer.overview, services.common, clientlib.progress (the same
progress bar as client.py) and tabulate; never grpc.
"""

from services.menu.app import Menu

__all__ = ["Menu"]
