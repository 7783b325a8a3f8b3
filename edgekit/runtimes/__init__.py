"""Runners: load an artifact and run it (numpy + one runtime; copied to devices).

This package imports nothing from the rest of edgekit and needs only numpy plus the runtime
itself, so it can be copied to a device and run there.
"""
