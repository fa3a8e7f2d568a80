"""Mission defaults other commands share, in a module light enough for any parser to import."""

HOVER_THROTTLE = 0.5
"""``[mission] hover_throttle`` unless a mission says otherwise: the stick that
holds altitude (the rig has no barometer; a craft's own figure belongs in its file)."""
