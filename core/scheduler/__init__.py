"""The scheduler runtime: small components run by the leader."""
