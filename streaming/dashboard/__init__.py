"""The live dashboard at ``/``: one page, its script and styles, and the socket.io-client it runs on, all served
by the service itself (no CDN, so it works with no internet)."""
