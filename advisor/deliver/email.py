"""The report by email over SMTP: STARTTLS (587) or implicit TLS (465), optional AUTH, one message per period.

The message is multipart/mixed: multipart/alternative (the plain-text report, then multipart/related with the HTML
and its charts as inline PNGs referred to by Content-ID), then recommendation.json and the configs as attachments.
Its Message-ID is derived from the deployment (the ledger's id), the period and the report's content, so a resend
after an unknown outcome is the same message, which mail clients and Gmail show once, while two deployments mailing
from one address, or a report made again for the period, get their own.
"""

from __future__ import annotations

import email.policy
import hashlib
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses
from pathlib import Path
from typing import Literal

from advisor.deliver.channel import DeliveryError, Outcome, PeriodLedger
from advisor.deliver.ledger import Status
from advisor.deliver.package import ReportPackage
from advisor.deliver.retry import RetryPolicy, Transient, with_retries
from slicewise.secrets import Secret

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: Security
    sender: str  # the From header, e.g. "slicewise <gpu-reports@example.com>"
    username: str | None = None
    password: Secret | None = None
    timeout: float = 30.0
    ca_file: Path | None = None  # a private CA to trust, beside the system's
    local_hostname: str | None = None  # what EHLO says; default: this host's FQDN


def message_id(period: str, sender: str, deployment: str = "", report: str = "") -> str:
    """The same Message-ID for every send of one report (``report``: a digest of its content) of one period from
    one deployment and sender; a different one for anything else."""
    address = getaddresses([sender])[0][1] or sender
    domain = address.rpartition("@")[2] or "slicewise.invalid"
    digest = hashlib.sha256(f"{deployment}|{period}|{report}|{address}".encode()).hexdigest()[:32]
    return f"<slicewise.{digest}@{domain}>"


def report_digest(package: ReportPackage) -> str:
    """What identifies the report's content: its recommendation.json (the rest is rendered from it)."""
    data = next((a.content for a in package.attachments if a.filename == "recommendation.json"), None)
    return hashlib.sha256(data if data is not None else package.text.encode()).hexdigest()


# RFC 5322's hard limit: Python's folder at 78 would fold a long Subject right after "Subject:", which some
# clients show as a leading space
_POLICY = email.policy.SMTP.clone(max_line_length=998)


def build_message(package: ReportPackage, sender: str, recipients: Sequence[str], deployment: str = "") -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    msg["Subject"] = package.subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id(package.period, sender, deployment, report_digest(package))
    msg["X-Slicewise-Period"] = package.period
    msg.set_content(package.text, subtype="plain", charset="utf-8")
    msg.add_alternative(package.html.email, subtype="html", charset="utf-8")
    html_part = msg.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    for image in package.html.images:
        html_part.add_related(
            image.png,
            maintype="image",
            subtype="png",
            cid=f"<{image.cid}>",
            filename=image.filename,
            disposition="inline",
        )
    for a in package.attachments:
        maintype, _, subtype = a.mime.partition("/")
        msg.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
    return msg


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    return context


def _classify(exc: Exception, where: str) -> Exception:
    """Transient (retry soon) or DeliveryError (a human must act); the message never holds the password."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(f"{where}: authentication failed ({exc.smtp_code} {_text(exc.smtp_error)})")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"{where}: {exc} (check 'security' in the config)")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(f"{where}: the server's certificate is not trusted: {exc.verify_message}")
    if isinstance(exc, smtplib.SMTPResponseException):
        message = f"{where}: {exc.smtp_code} {_text(exc.smtp_error)}"
        return Transient(message) if 400 <= exc.smtp_code < 500 else DeliveryError(message)
    if isinstance(exc, (smtplib.SMTPServerDisconnected, OSError)):
        return Transient(f"{where}: {exc or type(exc).__name__}")
    return DeliveryError(f"{where}: {exc}")


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class EmailChannel:
    """Email to a list of recipients, each a ledger destination ``email:<address>``."""

    def __init__(
        self,
        settings: SmtpSettings,
        recipients: Sequence[str],
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.recipients = tuple(recipients)
        self.policy = policy
        self.sleep = sleep
        self.name = f"email via {settings.host}:{settings.port}"
        self._by_key = {self.key(r): r for r in self.recipients}

    @staticmethod
    def key(recipient: str) -> str:
        return "email:" + Address(addr_spec=getaddresses([recipient])[0][1]).addr_spec.lower()

    def destinations(self) -> tuple[str, ...]:
        return tuple(self._by_key)

    def send(self, package: ReportPackage, pending: Sequence[str], ledger: PeriodLedger) -> list[Outcome]:
        message = build_message(package, self.settings.sender, self.recipients, ledger.ledger.deployment_id())
        envelope_to = [getaddresses([self._by_key[k]])[0][1] for k in pending]
        for k in pending:
            before = ledger.begin(k)
            if before is not None and before.status == Status.SENDING:
                log.warning(
                    "%s: the last send to %s ended without an answer; sending the same message again", self.name, k
                )
        try:
            refused = with_retries(self.name, lambda: self._transaction(message, envelope_to), self.policy, self.sleep)
        except (Transient, DeliveryError) as exc:
            return [ledger.failed(k, str(exc)) for k in pending]
        outcomes = []
        for k, address in zip(pending, envelope_to, strict=True):
            if address in refused:
                code, reply = refused[address]
                outcomes.append(ledger.failed(k, f"{self.name}: {address} refused: {code} {_text(reply)}"))
            else:
                outcomes.append(ledger.sent(k, str(message["Message-ID"])))
        return outcomes

    def _transaction(self, message: EmailMessage, envelope_to: list[str]) -> dict[str, tuple[int, bytes]]:
        """One SMTP session; returns the refused recipients (some may be refused while the rest are accepted)."""
        s = self.settings
        where = f"{self.name}"
        try:
            smtp: smtplib.SMTP
            if s.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout, context=_tls_context(s)
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout)
            with smtp:
                smtp.ehlo()
                if s.security == "starttls":
                    smtp.starttls(context=_tls_context(s))
                    smtp.ehlo()
                if s.username is not None and s.password is not None:
                    smtp.login(s.username, s.password.reveal())
                sender = getaddresses([s.sender])[0][1]
                refused = smtp.send_message(message, from_addr=sender, to_addrs=envelope_to)
        except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= c < 500 for c in codes):
                raise Transient(f"{where}: every recipient deferred ({codes})") from None
            return dict(exc.recipients)
        except Exception as exc:
            raise _classify(exc, where) from None
        return dict(refused)
