"""The report on Slack, through slack_sdk: an incoming webhook (summary and link) or a bot token (summary, then
the HTML report and the JSON uploaded into the message's thread with the files upload flow).

Retries: slack_sdk's clients take retry handlers; :class:`RetryAfterHandler` retries 429 and every 5xx, waiting
what Retry-After says (capped by the policy) or backing off exponentially, and slack_sdk's connection handler
retries refused or reset connections. A bot's message carries metadata naming its period, and before posting
again after an attempt whose outcome is unknown the bot looks for that message in the channel, so a lost response
does not post the report twice. Webhooks cannot be asked: after an unknown outcome a webhook may repeat.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, HttpRequest, HttpResponse, RetryHandler, RetryState

from advisor.deliver.channel import DeliveryError, Outcome, PeriodLedger
from advisor.deliver.ledger import Status
from advisor.deliver.package import Attachment, ReportPackage
from advisor.deliver.retry import RetryPolicy, Transient, parse_retry_after, with_retries
from advisor.deliver.slack_blocks import summary_blocks
from slicewise.secrets import Secret

log = logging.getLogger(__name__)
# slack_sdk logs request URLs (a webhook URL is a secret) and bodies at DEBUG: keep that off whatever the root says
_sdk_log = logging.getLogger("advisor.deliver.slack.http")
_sdk_log.setLevel(logging.INFO)

EVENT_TYPE = "slicewise_report"
DEFAULT_API_URL = "https://slack.com/api/"


class RetryAfterHandler(RetryHandler):
    """Retry HTTP 429 and 5xx; wait Retry-After when the server says, else back off per the policy."""

    def __init__(
        self,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        statuses: tuple[int, ...] = (429, *range(500, 600)),
    ) -> None:
        super().__init__(max_retry_count=policy.attempts - 1)
        self.policy = policy
        self.sleep = sleep
        self.statuses = frozenset(statuses)

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code in self.statuses

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        retry_after = _header_retry_after(response.headers) if response is not None else None
        wait = self.policy.delay(state.current_attempt + 1, retry_after)
        status = response.status_code if response is not None else "?"
        log.warning("Slack answered HTTP %s; retry %d in %.1f s", status, state.current_attempt + 1, wait)
        self.sleep(wait)
        state.next_attempt_requested = True
        state.increment_current_attempt()


def _handlers(policy: RetryPolicy, sleep: Callable[[float], None]) -> list[RetryHandler]:
    return [RetryAfterHandler(policy, sleep), ConnectionErrorRetryHandler(max_retry_count=policy.attempts - 1)]


def _api_error(where: str, exc: SlackClientError) -> str:
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        return f"{where}: HTTP {status}, {error or str(exc.response.data)[:200]}"
    return f"{where}: {exc}"


class SlackWebhookChannel:
    """An incoming webhook: one message with the summary and, when ``report_url`` is set, a link to the report."""

    def __init__(
        self,
        label: str,
        url: Secret,
        policy: RetryPolicy,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.policy = policy
        self.timeout = timeout
        self.sleep = sleep
        # the URL is the secret: the ledger key and the logs name the webhook by its label and a digest
        digest = hashlib.sha256(url.reveal().encode()).hexdigest()[:10]
        self.name = f"Slack webhook {label}"
        self._key = f"slack-webhook:{label}:{digest}"

    def destinations(self) -> tuple[str, ...]:
        return (self._key,)

    def send(self, package: ReportPackage, pending: Sequence[str], ledger: PeriodLedger) -> list[Outcome]:
        if self._key not in pending:
            return []
        before = ledger.begin(self._key)
        if before is not None and before.status == Status.SENDING:
            log.warning(
                "%s: the last post ended without an answer; a webhook cannot be asked, posting again", self.name
            )
        client = WebhookClient(
            self.url.reveal(),
            timeout=int(self.timeout),
            logger=_sdk_log,
            retry_handlers=_handlers(self.policy, self.sleep),
        )
        try:
            response = client.send(text=package.subject, blocks=summary_blocks(package), unfurl_links=False)
        except (SlackClientError, OSError) as exc:
            return [ledger.failed(self._key, f"{self.name}: {exc}")]
        if response.status_code != 200:
            return [ledger.failed(self._key, f"{self.name}: HTTP {response.status_code}, {response.body[:200]}")]
        return [ledger.sent(self._key, response.body[:100] or "ok")]


class SlackBotChannel:
    """A bot token: the summary to each channel, then the report files in the summary's thread."""

    def __init__(
        self,
        token: Secret,
        channels: Sequence[str],
        policy: RetryPolicy,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 30.0,
        upload_report: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.token = token
        self.channels = tuple(channels)
        self.policy = policy
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.timeout = timeout
        self.upload_report = upload_report
        self.sleep = sleep
        self.name = f"Slack bot ({', '.join(self.channels)})"

    @staticmethod
    def message_key(channel: str) -> str:
        return f"slack:{channel}:message"

    @staticmethod
    def report_key(channel: str) -> str:
        return f"slack:{channel}:report"

    def destinations(self) -> tuple[str, ...]:
        keys: list[str] = []
        for c in self.channels:
            keys.append(self.message_key(c))
            if self.upload_report:
                keys.append(self.report_key(c))
        return tuple(keys)

    def _client(self, only_rate_limits: bool = False) -> WebClient:
        handlers: list[RetryHandler] = (
            [RetryAfterHandler(self.policy, self.sleep, statuses=(429,))]
            if only_rate_limits
            else _handlers(self.policy, self.sleep)
        )
        return WebClient(
            token=self.token.reveal(),
            base_url=self.api_url,
            timeout=int(self.timeout),
            logger=_sdk_log,
            retry_handlers=handlers,
        )

    def send(self, package: ReportPackage, pending: Sequence[str], ledger: PeriodLedger) -> list[Outcome]:
        client = self._client()
        outcomes: list[Outcome] = []
        for channel in self.channels:
            mkey, rkey = self.message_key(channel), self.report_key(channel)
            posted = ledger.detail_of_sent(mkey)
            if mkey in pending:
                outcome = self._post(package, channel, ledger)
                outcomes.append(outcome)
                posted = outcome.detail if outcome.sent else None
            if self.upload_report and rkey in pending:
                if posted is None:
                    continue  # no message to thread under yet: the next cycle posts it, then uploads
                where = json.loads(posted)
                outcomes.append(self._upload(client, channel, where["channel"], where["ts"], package, ledger))
        return outcomes

    def _post(self, package: ReportPackage, channel: str, ledger: PeriodLedger) -> Outcome:
        """Post the summary once: every retry first looks for the message an earlier attempt may have posted.

        Its client retries only 429 (the request was refused, nothing was posted); a 5xx or a dropped connection
        may come after Slack posted the message, so those retries go through the history check.
        """
        key = self.message_key(channel)
        before = ledger.begin(key)
        where = f"{self.name}: chat.postMessage to {channel}"
        client = self._client(only_rate_limits=True)
        attempts = itertools.count(1)

        def attempt() -> dict[str, str]:
            if next(attempts) > 1 or before is not None:
                found = self._find_posted(client, channel, package.period)
                if found is not None:
                    log.warning("%s: already posted (ts %s), not posting again", where, found["ts"])
                    return found
            try:
                response = client.chat_postMessage(
                    channel=channel,
                    text=package.subject,
                    blocks=summary_blocks(package, with_thread=self.upload_report),
                    metadata={"event_type": EVENT_TYPE, "event_payload": {"period": package.period}},
                    unfurl_links=False,
                    unfurl_media=False,
                )
            except SlackApiError as exc:
                status = exc.response.status_code
                if status == 429 or status >= 500:
                    raise Transient(_api_error(where, exc), _header_retry_after(exc.response.headers)) from None
                raise DeliveryError(_api_error(where, exc)) from None
            except (SlackClientError, OSError) as exc:
                raise Transient(f"{where}: {exc}") from None
            return {"channel": str(response["channel"]), "ts": str(response["ts"])}

        try:
            posted = with_retries(where, attempt, self.policy, self.sleep)
        except (Transient, DeliveryError) as exc:
            return ledger.failed(key, str(exc))
        return ledger.sent(key, json.dumps(posted))

    def _find_posted(self, client: WebClient, channel: str, period: str) -> dict[str, str] | None:
        """Our message for ``period`` if an earlier attempt posted it; None if not, or if we may not look."""
        try:
            history = client.conversations_history(channel=channel, include_all_metadata=True, limit=100)
        except SlackApiError as exc:
            log.warning("%s: cannot look for an earlier post (%s); posting", self.name, _api_error(channel, exc))
            return None
        except (SlackClientError, OSError) as exc:  # Slack unreachable: posting blind could post twice, so retry
            raise Transient(f"{self.name}: cannot look for an earlier post in {channel}: {exc}") from None
        messages: list[dict[str, Any]] = history.get("messages") or []
        for message in messages:
            metadata: dict[str, Any] = message.get("metadata") or {}
            if metadata.get("event_type") == EVENT_TYPE and metadata.get("event_payload", {}).get("period") == period:
                return {"channel": channel, "ts": str(message["ts"])}
        return None

    def _upload(
        self,
        client: WebClient,
        channel: str,
        channel_id: str,
        thread_ts: str,
        package: ReportPackage,
        ledger: PeriodLedger,
    ) -> Outcome:
        key = self.report_key(channel)
        ledger.begin(key)
        where = f"{self.name}: files upload to {channel}"
        json_file = next(a for a in package.attachments if a.filename == "recommendation.json")
        files = [package.report_file, json_file]

        def upload() -> Any:
            try:
                return client.files_upload_v2(
                    channel=channel_id,
                    thread_ts=thread_ts,
                    file_uploads=[_upload_item(a) for a in files],
                    initial_comment="The full report (open the HTML file in a browser) and the data behind it.",
                )
            except SlackApiError as exc:
                raise DeliveryError(_api_error(where, exc)) from None
            except (SlackClientError, OSError) as exc:  # the upload URL step: slack_sdk does not retry it
                raise Transient(f"{where}: {exc}", retry_after=_retry_after_of(exc)) from None

        try:
            response = with_retries(where, upload, self.policy, self.sleep)
        except (Transient, DeliveryError) as exc:
            return ledger.failed(key, str(exc))
        ids = [f.get("id") for f in response.get("files", [])]
        return ledger.sent(key, json.dumps({"files": ids}))


def _upload_item(a: Attachment) -> dict[str, Any]:
    return {"content": a.content, "filename": a.filename, "title": a.filename}


def _header_retry_after(headers: Mapping[str, Any]) -> float | None:
    """Retry-After from slack_sdk's headers (values may be lists) or a urllib response's."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            return parse_retry_after(value[0] if isinstance(value, list) and value else str(value))
    return None


def _retry_after_of(exc: Exception) -> float | None:
    headers = getattr(exc, "headers", None)
    return parse_retry_after(headers.get("Retry-After")) if headers is not None else None
