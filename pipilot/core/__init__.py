"""pipilot.core."""
