"""Southbound ingest adapters (MQTT, LoRaWAN): they decode device messages and call the same
entity services as the HTTP API."""
