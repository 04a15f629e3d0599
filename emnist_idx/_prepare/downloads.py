"""A quick check that NIST's server can be reached before TFDS starts its minutes of retries."""

from __future__ import annotations

import os
import socket
import urllib.parse

# Set EMNIST_IDX_OFFLINE=1 to never try the network (air-gapped clusters, tests).
OFFLINE_VARIABLE = "EMNIST_IDX_OFFLINE"


def unreachable_reason(url: str, timeout: float = 5.0) -> str | None:
    """Why ``url``'s host cannot be reached right now, or None when a TCP connection opens."""
    if os.environ.get(OFFLINE_VARIABLE, "").lower() in {"1", "true", "yes"}:
        return f"{OFFLINE_VARIABLE} is set"
    parsed = urllib.parse.urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"no connection to {parsed.hostname}:{port} ({exc})"
