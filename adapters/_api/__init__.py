"""What the REST and gRPC adapters share: guarded operations, remote leases and how an
error is named on the wire."""
