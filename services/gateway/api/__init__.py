"""The HTTP API routers (``/api/v1``, ``/admin``)."""
