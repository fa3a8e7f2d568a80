"""pipilot.mission."""
