"""The simulated CC3D: LibrePilot 16.09 on a quadrotor, for newcomers and the tests.

``SimulatedCC3D`` is the model, advanced explicitly in time; ``LockstepSim``
drives it on a virtual clock in one process (see pipilot.sim.lockstep); the
real-time runner attaches it to pty pairs (pipilot.sim.runner).
"""

from pipilot.sim.lockstep import LockstepSim, LockstepVehicle
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.receiver import Firmware, SbusReceiver
from pipilot.sim.sticks import pack_frame, stick_frame

__all__ = [
    "Firmware",
    "LockstepSim",
    "LockstepVehicle",
    "SbusReceiver",
    "SimulatedCC3D",
    "pack_frame",
    "stick_frame",
]
