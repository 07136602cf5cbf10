"""Services: asyncio orchestration that reads top to bottom — the station (supervision),
docking, the pre-shift test, the offload, the monitor."""
