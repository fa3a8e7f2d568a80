"""pipilot.sbus."""
