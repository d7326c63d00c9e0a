"""PagerDuty from the bot: the REST API v2 (incident actions, notes, on-calls, users) and the Events API v2.

One HTTP stack serves both PagerDuty APIs: the official ``pagerduty`` package's (httpx2, synchronous, run in a
worker thread). :class:`PagerDutyClient` (:mod:`.rest`) uses its :class:`pagerduty.RestApiV2Client`;
:func:`send_event` (:mod:`.events`) its :class:`pagerduty.EventsApiV2Client`. Both are configured in one place,
:mod:`.official_client`, through the library's documented settings (``retry``, ``max_http_attempts``,
``max_network_attempts``, ``sleep_timer``, ``timeout``) and read its public errors (``pagerduty.HttpError`` with
its ``response``, ``pagerduty.Error``), so the two APIs retry, time out and fail the same way. Errors are
:class:`PagerDutyError` (:mod:`.errors`) in PagerDuty's own words; neither the API token nor a routing key ever
appears in one. The bot's shared ``httpx.AsyncClient`` (Slack, Supabase, probes, deploy hooks) is not used for
PagerDuty.
"""

from integrations.pagerduty.errors import (
    MAX_WAIT,
    NO_FROM_MESSAGE,
    PagerDutyError,
    pagerduty_words,
    retry_delay,
)
from integrations.pagerduty.events import DEFAULT_EVENTS_URL, send_event
from integrations.pagerduty.rest import PagerDutyClient

__all__ = [
    "DEFAULT_EVENTS_URL",
    "MAX_WAIT",
    "NO_FROM_MESSAGE",
    "PagerDutyClient",
    "PagerDutyError",
    "pagerduty_words",
    "retry_delay",
    "send_event",
]
