"""Log lines: a URL's credentials never reach a log, in text or JSON; a JSON line is one
object with the fields a log shipper reads."""

from __future__ import annotations

import json
import logging
import sys

from chaosproxy.common.logs import JsonFormatter, TextFormatter, redact


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("chaosproxy.proxy", logging.WARNING, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_redact_hides_the_userinfo_of_every_url_and_nothing_else() -> None:
    text = "proxying http://u:s3cret@api:80/x -> https://tok@h/y?q=a@b (mail me@example)"
    assert redact(text) == "proxying http://***@api:80/x -> https://***@h/y?q=a@b (mail me@example)"
    assert redact("redis://:p@ss@cache:6379/0") == "redis://***@cache:6379/0"
    assert redact("no credentials here") == "no credentials here"


def test_a_json_line_is_one_object_with_level_logger_message_and_extras() -> None:
    line = JsonFormatter(worker=2).format(
        _record("upstream %s down", "http://a:b@svc", request_id="r-1", event="fault")
    )
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "warning" and out["logger"] == "chaosproxy.proxy"
    assert out["msg"] == "upstream http://***@svc down"
    assert (out["worker"], out["request_id"], out["event"]) == (2, "r-1", "fault")
    assert out["ts"].endswith("Z")


def test_a_json_line_carries_the_traceback_redacted() -> None:
    try:
        raise ValueError("cannot reach http://admin:hunter2@db")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    out = json.loads(JsonFormatter().format(record))
    assert "ValueError" in out["exc"] and "hunter2" not in out["exc"]
    assert "worker" not in out


def test_a_text_line_is_redacted_too() -> None:
    line = TextFormatter("%(levelname)s %(message)s").format(_record("to http://x:y@h"))
    assert line == "WARNING to http://***@h"
