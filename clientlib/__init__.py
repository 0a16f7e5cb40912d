"""The library behind ``client.py``: talking to one peer's REST API over HTTP.

Kept apart from ``services/`` (the peer's own runtime) and ``chord/`` (the pure protocol
core), except ``chord.names``, the one file-name validator (pure standard library), so
the client refuses exactly what a peer refuses; it runs with the standard library plus
tqdm (progress bars) and mfusepy (the mount).

* ``peer``      -- addresses, one-line errors, JSON requests with ``http.client``
* ``multipart`` -- a ``multipart/form-data`` frame whose length is known up front
* ``ranges``    -- splitting a byte range, ``Range`` / ``Content-Range`` headers
* ``upload``    -- streaming a file to ``POST /upload_file``
* ``download``  -- resumable, checksum-verified, optionally parallel downloads
"""
