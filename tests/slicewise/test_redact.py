"""slicewise.redact: registered secrets and secret-looking text are masked in messages and in every log record,
whichever logger creates it, with the exception text too."""

from __future__ import annotations

import logging

import pytest

from slicewise import redact


def test_registered_secrets_and_secret_shapes_are_masked() -> None:
    redact.register("hunter2-registered")
    text = redact.redact(
        "login hunter2-registered; GET https://bob:pa%40ss@prom.example.com:9090/api; "
        "POST https://hooks.slack.com/services/T01/B02/abcDEF123; token xoxb-1234-5678-abcd"
    )
    assert "hunter2" not in text and "pa%40ss" not in text and "bob" not in text
    assert "abcDEF123" not in text and "xoxb-1234" not in text
    assert "https://<redacted>@prom.example.com:9090/api" in text
    assert redact.redact("nothing secret here: node-1, GPU-1") == "nothing secret here: node-1, GPU-1"
    redact.register("abc")  # too short to mask without masking ordinary words
    assert redact.redact("abc def") == "abc def"


def test_urls_lose_their_userinfo_and_keep_the_rest() -> None:
    assert (
        redact.redact_url("http://alice:pw123456@127.0.0.1:9090/prom?x=1")
        == "http://<redacted>@127.0.0.1:9090/prom?x=1"
    )
    assert redact.redact_url("https://prom.example.com/") == "https://prom.example.com/"
    url, user, password = redact.split_userinfo("https://al%20ice:p%3Ass-word-9@prom.example.com/x")
    assert (url, user, password) == ("https://prom.example.com/x", "al ice", "p:ss-word-9")
    assert "p:ss-word-9" not in redact.redact("it was p:ss-word-9")  # registered on the way


def test_every_log_record_is_redacted_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    redact.register("sekret-token-for-logs")
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG):
        log.debug("request to %s", "https://x/sekret-token-for-logs")
        try:
            raise ValueError("boom sekret-token-for-logs")
        except ValueError:
            log.exception("failed")
    assert "sekret" not in caplog.text and caplog.text.count("<redacted>") >= 2
    assert "ValueError: boom <redacted>" in caplog.text
