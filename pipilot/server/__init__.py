"""pipilot.server."""
