"""atp's wire formats and the conversions between them and core types, both ways: gRPC's
generated messages (``pb``) with ``tasks`` and ``flows``, the REST API's JSON bodies with
``rest``, and how an error travels in either (``problems``).

One module per format for both ends: the adapters (the server) send with it and the SDK's
clients read back with it, and the other way round, so the two cannot drift. Adapters
import the SDK, never the other way round (``docs/ARCHITECTURE.md``).
"""
