"""pipilot.link."""
