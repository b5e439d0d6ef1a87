"""PostgreSQL access shared by the gateway and the recorder: migrations and pool creation."""
