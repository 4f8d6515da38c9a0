"""Data shipped with Toshi: the NGSI-LD core @context files (``contexts/``).

A package only so that ``importlib.resources`` finds the files inside an installed wheel.
"""
