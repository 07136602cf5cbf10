"""The camdock reference camera protocol, version 1 (firmware-notes/camera-protocol.md): the
driver every camera that implements it gets."""

from camdock.camera.camdock_v1.driver import ProtocolV1Driver
from camdock.camera.driver import register

__all__ = ["ProtocolV1Driver"]

register(ProtocolV1Driver, default=True)
