"""Request signatures: Slack's v0 HMAC (what Slack sends us) and PagerDuty's v1 webhook HMAC.

The console and the tests sign requests exactly as Slack and PagerDuty do, so they go through the same
verification as production traffic instead of a bypass.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def sign_slack_request(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack would send with `body` (https://api.slack.com/authentication/verifying-requests-from-slack)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_signature(secret, ts, body)}


#: Slack's replay window: a request whose timestamp is further than this from now is refused.
SLACK_TIMESTAMP_WINDOW = 5 * 60


def verify_slack_request(
    secret: str, body: bytes, timestamp: str | None, signature: str | None, now: float | None = None
) -> bool:
    """True when `signature` is Slack's v0 HMAC of `body` at `timestamp`, within the 5-minute window.
    Malformed headers (missing, not a number, not ASCII) are simply invalid, never an error."""
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.strip().isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > SLACK_TIMESTAMP_WINDOW:
        return False
    return hmac.compare_digest(slack_signature(secret, timestamp.strip(), body).encode(), signature.encode())


def pagerduty_signature(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_pagerduty_webhook(secrets: str | Iterable[str], body: bytes) -> dict[str, str]:
    """`X-PagerDuty-Signature` as PagerDuty sends it: one `v1=` value per active secret, comma-separated."""
    values = [secrets] if isinstance(secrets, str) else list(secrets)
    return {"X-PagerDuty-Signature": ",".join(pagerduty_signature(s, body) for s in values)}


def verify_pagerduty_signature(secrets: Iterable[str], body: bytes, header: str | None) -> bool:
    """True when any `v1=` signature in `header` matches `body` under any of `secrets` (constant-time)."""
    if not header:
        return False
    offered = [part.strip() for part in header.split(",") if part.strip().startswith("v1=")]
    expected = [pagerduty_signature(secret, body) for secret in secrets]
    matched = False
    for candidate in offered:
        for signature in expected:
            matched |= hmac.compare_digest(candidate, signature)
    return matched
