"""Errors of the InfluxDB store, sorted by what the outbox does about them."""

from __future__ import annotations


class InfluxError(Exception):
    """Something went wrong talking to InfluxDB. ``status`` is the HTTP status (None when no
    answer came back) and ``body`` the response body (the server's explanation)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class InfluxUnavailable(InfluxError):
    """No answer, a timeout, a 5xx or a 429: retry the same rows later (backoff)."""


class InfluxAuthError(InfluxError):
    """401/403: the credentials are wrong or lack rights. Rows are kept; fix the credentials."""


class InfluxNotFound(InfluxError):
    """404: the database/bucket (or the endpoint) does not exist. Rows are kept; create it."""


class InfluxRejected(InfluxError):
    """Another 4xx: InfluxDB refused this data (e.g. a field type conflict). The batch is
    quarantined with the response body and the queue moves on."""


def short(body: str, limit: int = 500) -> str:
    body = body.strip()
    return body if len(body) <= limit else body[:limit] + "..."


def from_status(status: int, body: str, what: str) -> InfluxError:
    """The error for an HTTP answer other than success to ``what`` (e.g. ``write to <url>``)."""
    text = short(body)
    if status in (401, 403):
        return InfluxAuthError(
            f"InfluxDB refused the credentials ({status}) for {what}: {text or 'no details'}; "
            "check username/password or token in the site file's storage section",
            status=status,
            body=body,
        )
    if status == 404:
        return InfluxNotFound(
            f"InfluxDB answered 404 for {what}: {text or 'not found'}; "
            "create the database/bucket (or DBRP mapping) first",
            status=status,
            body=body,
        )
    if status in (408, 429) or status >= 500:
        return InfluxUnavailable(
            f"InfluxDB is unavailable ({status}) for {what}: {text}", status=status, body=body
        )
    return InfluxRejected(f"InfluxDB rejected {what} ({status}): {text}", status=status, body=body)
