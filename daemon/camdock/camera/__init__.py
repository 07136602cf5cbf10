"""Cameras: the command protocol's codec and serial link, the semantic driver interface with
its registry (``driver_for``), and each vendor's driver under its own folder."""

from camdock.camera.driver import CameraDriver, DriverFactory, driver_for, register

__all__ = ["CameraDriver", "DriverFactory", "driver_for", "register"]
