"""Notifications: deciding who hears about a change, and carrying the bytes to them.

``dispatcher`` owns delivery: one bounded queue and one worker per receiver origin, so a slow or
dead receiver only ever fills its own queue. ``http_sender`` is the HTTP/1.1 client it uses for
``http://`` and ``https://`` endpoints; other schemes plug in their own ``Sender``.
"""
