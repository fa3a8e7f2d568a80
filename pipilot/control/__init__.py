"""pipilot.control."""
