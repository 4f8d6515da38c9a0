"""Toshi (都市): an NGSI-LD context broker."""

__version__ = "0.1.0"
