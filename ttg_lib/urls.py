"""URLs that can be shown: passwords hidden before a URL reaches a log or a record."""

from __future__ import annotations

from urllib.parse import urlparse


def redact_url(url: str) -> str:
    """Hide the password so URLs can go into logs and run records."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url
