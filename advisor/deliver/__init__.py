"""Deliver a week's report by email (SMTP) and Slack (webhook or bot), each destination exactly once.

``build_package(rec, previous, period)`` renders the report once; ``deliver(package, channels, ledger)`` sends it
to every channel whose destinations the :class:`DeliveryLedger` does not already mark as sent for that period.
Channels: :class:`EmailChannel`, :class:`SlackWebhookChannel`, :class:`SlackBotChannel`. Secrets come from
:func:`read_secret` (an environment variable or a file).
"""

from advisor.deliver.channel import Channel, DeliveryError, Outcome
from advisor.deliver.deliver import DeliveryResult, deliver
from advisor.deliver.email import EmailChannel, SmtpSettings, build_message
from advisor.deliver.ledger import DeliveryLedger, Status
from advisor.deliver.package import Attachment, ReportPackage, build_package
from advisor.deliver.retry import RetryPolicy
from advisor.deliver.slack import SlackBotChannel, SlackWebhookChannel
from slicewise.secrets import Secret, read_secret

__all__ = [
    "Attachment",
    "Channel",
    "DeliveryError",
    "DeliveryLedger",
    "DeliveryResult",
    "EmailChannel",
    "Outcome",
    "ReportPackage",
    "RetryPolicy",
    "Secret",
    "SlackBotChannel",
    "SlackWebhookChannel",
    "SmtpSettings",
    "Status",
    "build_message",
    "build_package",
    "deliver",
    "read_secret",
]
