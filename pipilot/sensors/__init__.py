"""Flow-deck drivers (PMW3901 optical flow on SPI, VL53L1X ranger on I2C), an MPU-6050
IMU on the same I2C bus, and their reader.

The drivers take a bus object (`pipilot.sensors.bus`), so they run the same
on the Pi and against the register models of `pipilot.sim.flowdeck`.
"""

from pipilot.sensors.bus import SensorError
from pipilot.sensors.mpu6050 import ImuConfig, ImuSample, Mpu6050
from pipilot.sensors.pmw3901 import FlowSample, Pmw3901
from pipilot.sensors.reader import (
    FlowDeckPoller,
    SensorFault,
    SensorReader,
    TimedFlow,
    TimedImu,
    TimedRange,
    TimedRates,
)
from pipilot.sensors.vl53l1x import RangeSample, Vl53l1x

__all__ = ["FlowDeckPoller", "FlowSample", "ImuConfig", "ImuSample", "Mpu6050", "Pmw3901",
           "RangeSample", "SensorError", "SensorFault", "SensorReader", "TimedFlow", "TimedImu",
           "TimedRange", "TimedRates", "Vl53l1x"]
