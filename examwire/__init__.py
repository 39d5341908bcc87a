"""Examwire: the composition root (settings, app factory, command line, embedded Redis).

The layers live in sibling packages: ``engine`` (pure exam rules), ``protocol``
(wire messages), ``storage`` (Redis and stores), ``handlers`` (HTTP and
WebSocket), ``tasks`` (background work).
"""
