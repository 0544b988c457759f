"""Checks and shows the Payload API base URL.

A URL may carry credentials in its user info or query string, so every URL
custan prints or logs goes through ``redact_url`` first.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

DEFAULT_URL = "https://api.payload.com"
SCHEMES = ("http", "https")


def redact_url(url: str) -> str:
    """Return ``url`` without its user info, query string and fragment.

    This works on the text, not on a parsed URL, so that an invalid URL is
    shown without its secrets too.
    """
    text = url.split("#", 1)[0].split("?", 1)[0]
    scheme, separator, rest = text.partition("://")
    if not separator:
        return text.rpartition("@")[2]
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def url_problem(url: str) -> str | None:
    """Return why ``url`` cannot be an API base URL, or None when it can."""
    if any(character.isspace() or not character.isprintable() for character in url):
        return "it contains a space or a control character"
    try:
        parts = urlsplit(url)
        # Reading the port checks it: a port that is not a number raises.
        _ = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as error:
        return str(error)
    if not parts.scheme:
        return "it has no scheme"
    if parts.scheme.lower() not in SCHEMES:
        return f"its scheme is {parts.scheme}"
    if not parts.hostname:
        return "it has no host"
    return None


def invalid_url_message(url: str, problem: str, setting: str | None = None) -> str:
    """Describe an invalid API URL, naming the setting it came from if known."""
    place = f" in {setting}" if setting else ""
    return (
        f"invalid Payload API URL {redact_url(url)!r}{place} ({problem}); "
        f"expected an http:// or https:// URL, such as {DEFAULT_URL}"
    )
