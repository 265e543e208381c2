"""What the REST and gRPC adapters share: guarded operations and remote leases."""
