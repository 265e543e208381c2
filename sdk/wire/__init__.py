"""atp's gRPC wire format: the generated messages (``pb``) and the conversions between
them and core types, both ways (``tasks``, ``flows``).

One module for both ends: the gRPC adapter (the server) sends with it and the SDK's gRPC
client reads back with it, so the two cannot drift. Adapters import the SDK, never the
other way round (``ARCHITECTURE.md``).
"""
