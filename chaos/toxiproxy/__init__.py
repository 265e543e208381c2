"""A Toxiproxy-compatible TCP proxy, for machines where Shopify's toxiproxy is not installed.

It serves the same HTTP API (``/proxies``, ``/proxies/{name}/toxics``, ``/populate``,
``/reset``, ``/version``) for the toxics ``latency``, ``bandwidth``, ``slow_close``,
``timeout``, ``reset_peer``, ``slicer`` and ``limit_data``, and ``enabled: false`` to cut a
link, so a suite drives it or a real toxiproxy through the same ``ToxiproxyClient``.
Run it with ``python -m chaos.toxiproxy --host 127.0.0.1 --port 8474``.
"""

from chaos.toxiproxy.api import make_app
from chaos.toxiproxy.client import ToxiproxyClient, ToxiproxyError
from chaos.toxiproxy.proxy import Proxy, ProxyError, Registry
from chaos.toxiproxy.toxics import TOXIC_TYPES, Toxic

__all__ = [
    "TOXIC_TYPES",
    "Proxy",
    "ProxyError",
    "Registry",
    "Toxic",
    "ToxiproxyClient",
    "ToxiproxyError",
    "make_app",
]
