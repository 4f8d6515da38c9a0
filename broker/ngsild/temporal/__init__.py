"""The NGSI-LD Temporal API's pure rules (GS CIM 009 v1.8.1 §4.5.7-§4.5.9, §5.6.11-§5.6.16,
§5.7.3-§5.7.4): parameters, the instances a write adds to history, aggregation, rendering."""
