"""Every Redis key name atp uses, and nothing else builds one.

Keys carry a Redis Cluster hash tag (the part in braces), so every key one Lua script
touches lives in one slot:

- the store and the transport: one tag per shard, ``{s0}`` for now. A shard's indexes,
  task hashes, streams (one per subject), dead-letter streams and subject registry share
  it, so one script can create a task and add its id to its stream, or claim what it
  read from a stream (see ``_common.lua`` for the schema). This is the step towards a
  sharded store (issue 18): a subject will span shards as one stream per (shard,
  subject), and a consumer will read the streams of every shard;
- the coordinator: one tag per lease name, for the holder and its token counter, and
  one tag ``{members}`` for the registry's two keys, which every call reads together;
- the API's rate limiter: one tag per bucket, so buckets spread over a cluster's slots.

The prefix (``atp`` unless the URL says ``?prefix=``) separates deployments, and tests,
sharing one server.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FlowKeys",
    "LeaseKeys",
    "LimiterKeys",
    "RegistryKeys",
    "StoreKeys",
    "TransportKeys",
]

STORE_INDEXES = ("due", "ready", "running", "finished", "dead", "order", "counts")
"""The fixed keys every store script receives first, in this order."""


@dataclass(frozen=True, slots=True)
class StoreKeys:
    """The keys of one store shard."""

    prefix: str
    shard: str = "s0"

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.shard}}}"

    def indexes(self) -> list[str]:
        """The shard's index keys in the order the scripts expect (``KEYS[1..7]``)."""
        return [f"{self.base}:{name}" for name in STORE_INDEXES]

    def index(self, name: str) -> str:
        return f"{self.base}:{name}"

    def task(self, task_id: str) -> str:
        return f"{self.base}:task:{task_id}"

    @property
    def task_prefix(self) -> str:
        """What every task key starts with: scripts that learn ids from a stream build the
        task keys from it, and its hash tag keeps them in the shard's slot."""
        return f"{self.base}:task:"

    def idempotency(self, subject: str, key: str) -> str:
        """A producer's idempotency key, scoped by the task's subject (ADR 0028); a subject
        holds no ``:``, so no two (subject, key) pairs share a name."""
        return f"{self.base}:idempotency:{subject}:{key}"

    def unscoped_idempotency(self, key: str) -> str:
        """An idempotency key as named before ADR 0028 scoped keys by subject. Still read
        for its task's subject until its window closes; no longer written."""
        return f"{self.base}:idem:{key}"

    def fence(self, name: str) -> str:
        return f"{self.base}:fence:{name}"

    @property
    def activity(self) -> str:
        """The activity index: the start of each bucket kept, as score and member. The
        scripts name a bucket's key after the counts key (``_common.lua``), as here."""
        return f"{self.base}:activity"

    def activity_bucket(self, start: str) -> str:
        """The hash of one activity bucket: ``"<subject> <state>"`` -> attempts that
        ended so in the minute from ``start`` (the index's member)."""
        return f"{self.base}:activity:{start}"

    def schedule(self, name: str) -> str:
        """The hash of one cron schedule."""
        return f"{self.base}:schedule:{name}"

    def workflow(self, name: str) -> str:
        """The hash of one workflow's definitions: version -> JSON."""
        return f"{self.base}:workflow:{name}"

    def run(self, run_id: str) -> str:
        """The hash of one workflow run: its JSON and the fields scripts compare."""
        return f"{self.base}:run:{run_id}"

    def runs_in(self, state: str) -> str:
        """The ids of the runs in one state, score 0 (lexical order of ids)."""
        return f"{self.base}:runs_in:{state}"

    def workflow_runs(self, name: str) -> str:
        """The ids of one workflow's runs, score 0 (lexical order of ids)."""
        return f"{self.base}:workflow_runs:{name}"


@dataclass(frozen=True, slots=True)
class FlowKeys:
    """The keys of flow control (ADR 0038), in the store shard's slot: one script may take
    a task's slots, buckets and windows at once (see ``_flow.lua`` for the schema)."""

    prefix: str
    shard: str = "s0"

    @property
    def base(self) -> str:
        """What every flow key starts with; a script that finds names in a registry builds
        their keys from it."""
        return f"{self.prefix}:{{{self.shard}}}:flow:"

    def key(self, name: str) -> str:
        """One of the fixed keys: rules, pauses, version, slots, waiting, gc (the sweep's
        place in its walk over slots), breakers (the index of the breakers kept)."""
        return f"{self.base}{name}"

    def breaker(self, key: str) -> str:
        """The hash of circuit breaker ``key`` (``<group>/<subject>``, ADR 0040); the
        breaker scripts build the same name from ``base`` (``_breaker.lua``)."""
        return f"{self.base}breaker:{key}"

    def slot(self, name: str) -> str:
        return f"{self.base}slot:{name}"

    def bucket(self, name: str) -> str:
        return f"{self.base}bucket:{name}"

    def window(self, name: str) -> str:
        return f"{self.base}window:{name}"

    def window_queue(self, name: str) -> str:
        return f"{self.base}wq:{name}"

    def waiters(self, name: str) -> str:
        """The waiters of list ``name`` (a slot's name, or ``p:<subject>``): task id -> its
        group. The list's other keys follow (``_flow.lua`` builds the same names)."""
        return f"{self.base}members:{name}"

    def groups(self, name: str) -> str:
        """The groups waiting in list ``name``, each scored by its pass."""
        return f"{self.base}groups:{name}"

    def wait_list(self, name: str) -> str:
        """List ``name``'s time and the weights of its waiting groups."""
        return f"{self.base}list:{name}"

    def queue(self, name: str, group: str) -> str:
        """The waiters of one group of list ``name``, scored by rank; the list's length
        (in bytes) keeps apart pairs such as ("a:b", "c") and ("a", "b:c")."""
        return f"{self.base}queue:{len(name.encode())}:{name}:{group}"


@dataclass(frozen=True, slots=True)
class TransportKeys:
    """The keys of the Streams transport in one shard: a stream per subject, its
    dead-letter stream, and the subject registry; all in the store's shard slot."""

    prefix: str
    shard: str = "s0"

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.shard}}}"

    def stream(self, subject: str) -> str:
        """The ids of a subject's READY tasks, one entry each (field ``i``)."""
        return f"{self.base}:stream:{subject}"

    def dead(self, subject: str) -> str:
        """The dead-letter stream of a subject: terminated messages, with their reason."""
        return f"{self.base}:dead:{subject}"

    @property
    def subjects(self) -> str:
        """A set of every subject ever published to, so wildcard consumers find new ones."""
        return f"{self.base}:subjects"

    def group(self, group: str) -> str:
        """The Redis consumer-group name of an atp group."""
        return f"atp:{group}"


@dataclass(frozen=True, slots=True)
class LeaseKeys:
    """The keys of one named lease."""

    prefix: str
    name: str

    @property
    def holder(self) -> str:
        return f"{self.prefix}:{{lease:{self.name}}}:holder"

    @property
    def token(self) -> str:
        return f"{self.prefix}:{{lease:{self.name}}}:token"


@dataclass(frozen=True, slots=True)
class RegistryKeys:
    """The registry's keys (ADR 0041), passed to its scripts in this order."""

    prefix: str

    @property
    def expiry(self) -> str:
        """ZSET member name -> expires_at in ms of the server's time."""
        return f"{self.prefix}:{{members}}:expiry"

    @property
    def data(self) -> str:
        """HASH member name -> the member's JSON."""
        return f"{self.prefix}:{{members}}:data"

    @property
    def both(self) -> list[str]:
        return [self.expiry, self.data]


@dataclass(frozen=True, slots=True)
class LimiterKeys:
    """The keys of the API's rate limiter (ADR 0042): one hash per token bucket."""

    prefix: str

    def bucket(self, key: str) -> str:
        """Bucket ``key``'s hash (fields ``t``, ``s``), in a slot of its own."""
        return f"{self.prefix}:{{limit:{key}}}"
