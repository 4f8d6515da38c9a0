"""Distributed operations (GS CIM 009 v1.8.1 §4.3.6): forwarding requests to registered
context sources and merging their answers. ``client`` talks to the sources, ``reads`` answers
retrievals and queries, ``writes`` splits provision operations between sources and the local
broker; the rules themselves are pure, in ``broker.ngsild.registrations``."""
