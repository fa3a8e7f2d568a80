"""Flow-deck drivers (PMW3901 optical flow on SPI, VL53L1X ranger on I2C) and their reader.

The drivers take a bus object (`pipilot.sensors.bus`), so they run the same
on the Pi and against the register models of `pipilot.sim.flowdeck`.
"""

from pipilot.sensors.bus import SensorError
from pipilot.sensors.pmw3901 import FlowSample, Pmw3901
from pipilot.sensors.reader import FlowDeckPoller, SensorFault, SensorReader, TimedFlow, TimedRange
from pipilot.sensors.vl53l1x import RangeSample, Vl53l1x

__all__ = ["FlowDeckPoller", "FlowSample", "Pmw3901", "RangeSample", "SensorError",
           "SensorFault", "SensorReader", "TimedFlow", "TimedRange", "Vl53l1x"]
