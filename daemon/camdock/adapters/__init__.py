"""Adapters: one library each (pyudev, mount(8), gpiozero, pyserial, paho-mqtt, sd_notify),
and the verified copier that every reader of footage goes through."""
