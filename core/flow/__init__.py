"""Flow control (ADR 0038): concurrency slots, rate limits, pauses and the rules that set them.

``rules`` holds the model and turns rules into the gates one task must pass; ``meter``
the bucket and window arithmetic every ledger shares; ``admission`` the worker's side
(admit before running, hold back without spending an attempt, give slots back);
``service`` the operations the CLI and the APIs call.
"""
