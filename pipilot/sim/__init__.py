"""pipilot.sim."""
