"""pipilot: a Raspberry Pi companion-computer flight stack for a CC3D flight controller."""

__version__ = "0.1.0"
