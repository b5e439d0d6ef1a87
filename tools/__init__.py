"""Developer tooling: the embedded dev stack (``python -m tools.devstack``) and the helpers tests reuse."""
