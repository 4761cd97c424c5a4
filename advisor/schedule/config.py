"""The schedule's config file (YAML), validated by pydantic: the source, the window, when to run, where to write,
who gets the report, and where each secret comes from.

Every mistake is reported at once, in one error that names the file and each bad field (``email.smtp.port: ...``),
and ends the command with exit code 2. Unknown keys are mistakes too: a typo must not silently drop a recipient;
so is a key given twice, anywhere. A file that is not UTF-8 text, nests absurdly deep or gives an absurd duration
is one such error as well, never a traceback.
Secrets are never values in this file: only the environment variable or the file that holds each.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from advisor.schedule.period import trigger
from slicewise.cli_support import parse_duration
from slicewise.errors import BadInput
from slicewise.redact import has_userinfo

# The longest duration any setting takes: ten years is already no window or timeout anyone means.
DURATION_MAX = timedelta(days=3650)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        found = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"expected a duration such as 14d, 30m or 90s (got {value!r})")
        if value < 0:
            raise ValueError(f"expected a positive duration (got {value!r})")
        found = timedelta(seconds=min(value, DURATION_MAX.total_seconds() + 1))
    elif isinstance(value, str):
        try:
            found = parse_duration(value.strip())
        except OverflowError:
            found = DURATION_MAX + timedelta(seconds=1)
    else:
        raise ValueError(f"expected a duration such as 14d, 30m or 90s (got {value!r})")
    if found > DURATION_MAX:
        raise ValueError(f"longer than {DURATION_MAX.days} days (got {value!r})")
    return found


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _address(value: str) -> str:
    parsed = getaddresses([value])  # [] for an empty string on some Pythons
    address = parsed[0][1] if parsed else ""
    local, _, domain = address.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in address):
        raise ValueError(f"not an email address: {value!r}")
    return value


EmailAddress = Annotated[str, AfterValidator(_address)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(Strict):
    """Where one secret is: exactly one of an environment variable (``*_env``) or a file (``*_file``)."""

    @staticmethod
    def _one_of(env: str | None, file: Path | None, what: str, required: bool = True) -> None:
        if env is not None and file is not None:
            raise ValueError(f"give {what}_env or {what}_file, not both")
        if required and env is None and file is None:
            raise ValueError(f"{what}_env (an environment variable) or {what}_file (a file) is required")


def _no_userinfo(url: str) -> str:
    if has_userinfo(url):
        raise ValueError(
            "credentials do not belong in the URL (this file gets committed): give username and "
            "password_env or password_file"
        )
    return url


class PrometheusSourceConfig(SecretSource):
    url: Annotated[str, Field(pattern=r"^https?://\S+$"), AfterValidator(_no_userinfo)]
    username: str | None = None  # basic auth, with password_env or password_file
    password_env: str | None = None
    password_file: Path | None = None
    bearer_token_env: str | None = None  # or a bearer token (Thanos, Mimir, a proxy)
    bearer_token_file: Path | None = None
    ca_file: Path | None = None  # a private CA that signed the server's certificate
    timeout: Duration = timedelta(seconds=60)
    tenant: str | None = None  # X-Scope-OrgID (Mimir, Cortex, multi-tenant Thanos)
    recording_rules: bool = False  # read deploy/prometheus/slicewise.rules.yml's per-workload series
    step: Duration | None = None  # the advisor's resolution (default: 1m raw, 5m with recording_rules)

    @model_validator(mode="after")
    def _step(self) -> PrometheusSourceConfig:
        from advisor.history.connection import check_step

        if self.step is not None:
            check_step(self.step)  # a ValueError: reported with the field's name
        return self

    @model_validator(mode="after")
    def _auth(self) -> PrometheusSourceConfig:
        basic = self.username is not None
        bearer = self.bearer_token_env is not None or self.bearer_token_file is not None
        if basic and bearer:
            raise ValueError("give basic auth (username + password) or a bearer token, not both")
        if basic:
            self._one_of(self.password_env, self.password_file, "password")
        elif self.password_env is not None or self.password_file is not None:
            raise ValueError("a password needs a username")
        self._one_of(self.bearer_token_env, self.bearer_token_file, "bearer_token", required=False)
        return self


class SourceConfig(Strict):
    history: Path | None = None  # a history file (Parquet or CSV, DESIGN.md's columns)
    prometheus: PrometheusSourceConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceConfig:
        if (self.history is None) == (self.prometheus is None):
            raise ValueError("give exactly one of 'history' (a file) or 'prometheus' (a server)")
        return self


def _cron(value: str) -> str:
    try:
        trigger(value)
    except ValueError as exc:
        raise ValueError(f"not a crontab expression (minute hour day month day_of_week): {value!r}: {exc}") from None
    return value


def _zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin or UTC)") from None
    return value


class ScheduleTiming(Strict):
    cron: Annotated[str, AfterValidator(_cron)] = "0 8 * * mon"  # Mondays at 08:00
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    misfire_grace: Duration = timedelta(days=6)  # a run missed while down still happens if this late, at most
    retry_every: Duration = timedelta(minutes=30)  # how often destinations still owed the report are retried


class SmtpConfig(Strict):
    host: Annotated[str, Field(pattern=r"^[^\s/]+$")]  # a name or an address: not empty, no spaces
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: 587 for starttls, 465 for tls, 25 for none
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    timeout: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _auth(self) -> SmtpConfig:
        if self.username is not None:
            SecretSource._one_of(self.password_env, self.password_file, "password")
        elif self.password_env is not None or self.password_file is not None:
            raise ValueError("a password needs a username")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


class EmailConfig(Strict):
    smtp: SmtpConfig
    sender: Annotated[EmailAddress, Field(alias="from")]
    to: Annotated[list[EmailAddress], Field(min_length=1)]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SlackWebhookConfig(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.#-]+$")] = "default"  # names it in logs and the ledger
    url_env: str | None = None  # the webhook URL is a secret: from a variable or a file
    url_file: Path | None = None

    @model_validator(mode="after")
    def _url(self) -> SlackWebhookConfig:
        SecretSource._one_of(self.url_env, self.url_file, "url")
        return self


class SlackBotConfig(Strict):
    token_env: str | None = None
    token_file: Path | None = None
    channels: Annotated[list[str], Field(min_length=1)]  # channel IDs (C0123ABCD) are best: see docs/reports.md
    upload_report: bool = True  # upload the HTML report and the JSON into the summary's thread

    @model_validator(mode="after")
    def _token(self) -> SlackBotConfig:
        SecretSource._one_of(self.token_env, self.token_file, "token")
        return self


class SlackConfig(Strict):
    webhook: SlackWebhookConfig | None = None
    bot: SlackBotConfig | None = None
    api_url: Annotated[str, Field(pattern=r"^https?://\S+$")] = "https://slack.com/api/"
    timeout: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _something(self) -> SlackConfig:
        if self.webhook is None and self.bot is None:
            raise ValueError("give a 'webhook' or a 'bot' (or both)")
        return self


class DeliveryConfig(Strict):
    attempts: Annotated[int, Field(ge=1, le=20)] = 4  # per destination per cycle, the first included
    backoff: Duration = timedelta(seconds=2)  # the first wait; doubles each retry
    max_backoff: Duration = timedelta(seconds=60)  # the longest wait, whatever Retry-After says


class ScheduleConfig(Strict):
    source: SourceConfig
    window: Duration = timedelta(days=14)
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0  # what numpy and scikit-learn take
    schedule: ScheduleTiming = ScheduleTiming()
    output_dir: Path
    state_dir: Path | None = None  # default: <output_dir>/.state
    report_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None  # where output_dir is published
    email: EmailConfig | None = None
    slack: SlackConfig | None = None
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="after")
    def _somewhere(self) -> ScheduleConfig:
        if self.email is None and self.slack is None:
            raise ValueError("give 'email' or 'slack' (or both): the report must go somewhere")
        return self

    @property
    def state(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.output_dir / ".state"


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _relative_to(config: ScheduleConfig, base: Path) -> ScheduleConfig:
    """Paths in the file are relative to the file, as a person writing it expects, not to the current directory."""

    def fix(path: Path | None) -> Path | None:
        return path if path is None or path.is_absolute() else base / path

    updates: dict[str, Any] = {"output_dir": fix(config.output_dir), "state_dir": fix(config.state_dir)}
    source = config.source
    if source.history is not None:
        updates["source"] = source.model_copy(update={"history": fix(source.history)})
    elif source.prometheus is not None:
        p = source.prometheus
        prom = p.model_copy(update={k: fix(getattr(p, k)) for k in ("password_file", "bearer_token_file", "ca_file")})
        updates["source"] = source.model_copy(update={"prometheus": prom})
    if config.email is not None:
        s = config.email.smtp
        smtp = s.model_copy(update={k: fix(getattr(s, k)) for k in ("password_file", "ca_file")})
        updates["email"] = config.email.model_copy(update={"smtp": smtp})
    if config.slack is not None:
        slack = config.slack
        changes: dict[str, Any] = {}
        if slack.webhook is not None:
            changes["webhook"] = slack.webhook.model_copy(update={"url_file": fix(slack.webhook.url_file)})
        if slack.bot is not None:
            changes["bot"] = slack.bot.model_copy(update={"token_file": fix(slack.bot.token_file)})
        updates["slack"] = slack.model_copy(update=changes)
    return config.model_copy(update={k: v for k, v in updates.items() if v is not None})


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice in one mapping is an error: plain YAML keeps the last one, so
    ``to:`` written twice would mail only the second list."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults" then overriding a key is what merge keys are for
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first_line.get(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if earlier is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line {earlier})", key_node.start_mark
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path) -> ScheduleConfig:
    """Read and validate the config; BadInput (exit 2) naming the file and every problem in it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the schedule config: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(
            f"{path}: not a UTF-8 text file: byte 0x{data[exc.start]:02x} at line {line} cannot be decoded"
        ) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BadInput(f"{path}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise BadInput(f"{path}: nested too deeply to be a schedule config") from None
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: expected a mapping of settings (source, schedule, email, slack, ...)")
    try:
        config = ScheduleConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [f"  {_where(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        noun = "problem" if len(problems) == 1 else "problems"
        raise BadInput(f"{path}: {len(problems)} {noun} in the schedule config:\n" + "\n".join(problems)) from None
    except RecursionError:
        raise BadInput(f"{path}: nested too deeply to be a schedule config") from None
    return _relative_to(config, path.parent.resolve())
