"""PostgreSQL access shared by the gateway and the recorder: migrations, pool creation, the webhook delivery rows."""
