"""Context source registrations (GS CIM 009 v1.8.1 §5.2.9, §5.9, §5.10, §4.3): the pure rules.

``registration`` validates and expands a registration document, ``operations`` names the
operations and their groups, ``matching`` decides which registrations an operation or a
discovery query concerns, ``conflicts`` the rules between registrations, and ``merge`` how the
answers of several context sources become one.
"""
