"""pipilot.uavtalk."""
