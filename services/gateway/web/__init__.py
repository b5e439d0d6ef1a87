"""The dashboard: the React app (built into ``dist``) and the route that serves it."""
