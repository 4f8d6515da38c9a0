"""Southbound payload formats: pure decoders from (topic, bytes) to measures.

One module per wire format: ``iota_json`` (FIWARE IoT Agent JSON), ``cayenne_lpp`` (the LPP
binary frame), ``ttn_v3`` (The Things Stack MQTT integration) and ``chirpstack`` (ChirpStack
v4, and v3 by shape). Each turns what a device or network server sent into ``uplink.Reading``
or ``uplink.Uplink`` values, or raises ``errors.DecodeError``. None of them does I/O, logs or
reads the clock: the ingest loop owns those, so that a device's garbage is counted and set
aside there, and these functions stay easy to test and to fuzz.
"""
