"""An async client for the Toxiproxy HTTP API: Shopify's server or ours, the same calls."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ToxiproxyClient", "ToxiproxyError"]


class ToxiproxyError(Exception):
    """The server refused a call; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"toxiproxy {status}: {message}")
        self.status = status


class ToxiproxyClient:
    """Drive proxies and toxics at ``url`` (``http://127.0.0.1:8474`` by default)."""

    def __init__(self, url: str = "http://127.0.0.1:8474", **options: Any) -> None:
        self._http = httpx.AsyncClient(base_url=url, timeout=30.0, **options)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ToxiproxyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def version(self) -> str:
        return str((await self._call("GET", "/version"))["version"])

    async def proxies(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/proxies")
        return result

    async def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0") -> Any:
        """Create a proxy and return it; ``listen`` port 0 lets the server pick one."""
        body = {"name": name, "upstream": upstream, "listen": listen}
        return await self._call("POST", "/proxies", json=body)

    async def proxy(self, name: str) -> Any:
        return await self._call("GET", f"/proxies/{name}")

    async def set_enabled(self, name: str, enabled: bool) -> Any:
        """Cut a link (False: listener and live connections closed) or restore it."""
        return await self._call("POST", f"/proxies/{name}", json={"enabled": enabled})

    async def delete_proxy(self, name: str) -> None:
        await self._call("DELETE", f"/proxies/{name}")

    async def add_toxic(
        self,
        proxy: str,
        type: str,
        stream: str = "downstream",
        *,
        name: str | None = None,
        toxicity: float = 1.0,
        **attributes: float,
    ) -> Any:
        body = {"type": type, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        if name is not None:
            body["name"] = name
        return await self._call("POST", f"/proxies/{proxy}/toxics", json=body)

    async def update_toxic(self, proxy: str, toxic: str, **attributes: float) -> Any:
        body = {"attributes": attributes}
        return await self._call("POST", f"/proxies/{proxy}/toxics/{toxic}", json=body)

    async def remove_toxic(self, proxy: str, toxic: str) -> None:
        await self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic}")

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        await self._call("POST", "/reset")

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ToxiproxyError(response.status_code, message)
        return response.json() if response.content else None
