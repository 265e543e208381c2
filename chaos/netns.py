"""Kernel-level partitions: each atp process in a network namespace of its own, and
nftables rules in that namespace that drop its packets to or from chosen servers.

A namespace reaches the host through a veth pair on a /30 of its own (the host side is
``10.<base>.<n>.1``, the namespace side ``.2``); the fault proxies listen on every
address, so a process names the host side of its pair where others name 127.0.0.1.
Dropping packets (rather than closing connections as the proxy does) leaves connections
hanging until their timeouts, in one direction or both. Needs root, ``ip`` (Debian
``iproute2``) and ``nft`` (``nftables``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["DIRECTIONS", "Namespace", "NetnsUnavailable", "create", "cut", "heal"]

TABLE = "chaos"
DIRECTIONS = ("both", "out", "in")
"""out: the process's packets to the server are dropped; in: the server's answers."""


class NetnsUnavailable(RuntimeError):
    """Namespaces or nftables cannot be used here; the message says which and why."""


@dataclass(frozen=True)
class Namespace:
    """One process's namespace and the host address it reaches the servers by."""

    name: str
    host_ip: str

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *argv]


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise NetnsUnavailable(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def create(index: int) -> Namespace:
    """Create namespace ``index`` of this run, linked to the host by a veth pair."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            raise NetnsUnavailable(f"partitions need {tool!r} (Debian iproute2, nftables)")
    base = 20 + os.getpid() % 200  # runs side by side get their own subnets
    name, host, inner = f"chaos{os.getpid()}-{index}", f"vh{os.getpid()}-{index}", "eth0"
    host_ip, inner_ip = f"10.{base}.{index}.1", f"10.{base}.{index}.2"
    _run("ip", "netns", "add", name)
    _run("ip", "link", "add", host, "type", "veth", "peer", "name", inner, "netns", name)
    _run("ip", "addr", "add", f"{host_ip}/30", "dev", host)
    _run("ip", "link", "set", host, "up")
    _run("ip", "netns", "exec", name, "ip", "addr", "add", f"{inner_ip}/30", "dev", inner)
    _run("ip", "netns", "exec", name, "ip", "link", "set", inner, "up")
    _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    return Namespace(name, host_ip)


def delete(namespace: Namespace) -> None:
    """Delete the namespace; its veth pair goes with it."""
    subprocess.run(["ip", "netns", "del", namespace.name], capture_output=True, check=False)


def cut(namespace: Namespace, ports: list[int], direction: str) -> None:
    """Drop the namespace's TCP packets to ``ports`` (out), from them (in), or both."""
    listed = ", ".join(str(port) for port in ports)
    lines = [f"table inet {TABLE} {{"]
    if direction in ("both", "out"):
        lines += ["chain out {", "type filter hook output priority 0;"]
        lines += [f"tcp dport {{ {listed} }} drop", "}"]
    if direction in ("both", "in"):
        lines += ["chain in {", "type filter hook input priority 0;"]
        lines += [f"tcp sport {{ {listed} }} drop", "}"]
    script = "\n".join([*lines, "}", ""])
    heal(namespace)
    _run("ip", "netns", "exec", namespace.name, "nft", "-f", "-", stdin=script)


def heal(namespace: Namespace) -> None:
    """Remove every rule ``cut`` added to the namespace."""
    command = ["ip", "netns", "exec", namespace.name, "nft", "delete", "table", "inet", TABLE]
    subprocess.run(command, capture_output=True, check=False)
