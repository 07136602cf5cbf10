"""The station: its bays supervised on one event loop, docking, the pre-shift test, the
periodic jobs, the control socket's server side and the publisher to the station server."""
