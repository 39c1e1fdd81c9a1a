"""RabbitMQ's management API (HTTP, port 15672): what AMQP does not say - unacked counts,
consumers and their channels' idle time. Every call is best effort: None when the plugin is
off or unreachable, and callers say "unknown" rather than guess."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from base64 import b64encode
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlparse

__all__ = ["idle_ms", "management_get", "vhost_path", "worker_of"]


_TAG = re.compile(r"^(.*)\.\d+\.\d+$")  # a worker's consumer tag: <worker>.<time.time()>


def worker_of(consumer_tag: str) -> str:
    match = _TAG.match(consumer_tag)
    return match.group(1) if match else consumer_tag


def idle_ms(idle_since: Any) -> int:
    """Milliseconds since the channel's last activity (0 when active or unknown)."""
    if not isinstance(idle_since, str):
        return 0
    try:
        since = datetime.fromisoformat(idle_since)
    except ValueError:
        return 0
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    return max(0, int((datetime.now(timezone.utc) - since).total_seconds() * 1000))


def vhost_path(url: str) -> str:
    """The URL's vhost, quoted for a management API path ('/' is %2F)."""
    path = urlparse(url).path
    return quote(unquote(path[1:]) or "/", safe="") if path not in ("", "/") else "%2F"


def management_get(url: str, path: str, timeout: float = 2.0) -> Any:
    """GET from the management API of the broker at ``url`` (its credentials); None when the
    plugin is off or unreachable. TTG_RABBITMQ_MANAGEMENT_URL overrides host and port."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    base_url = os.environ.get("TTG_RABBITMQ_MANAGEMENT_URL", f"http://{host}:15672").rstrip("/")
    token = b64encode(f"{parsed.username or 'guest'}:{parsed.password or 'guest'}".encode())
    request = urllib.request.Request(f"{base_url}{path}",
                                     headers={"Authorization": f"Basic {token.decode()}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
