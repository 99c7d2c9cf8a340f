"""Maintenance scripts for pvesim (not used at run time)."""
