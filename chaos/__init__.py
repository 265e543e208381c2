"""Chaos tooling: fault injectors and the suites that check atp's guarantees under them."""
