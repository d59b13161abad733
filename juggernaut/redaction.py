"""Keeping secrets out of debug pages and logs.

Secrets arrive from the environment (settings such as ``DATABASE_URL`` or an API key) and from callers
(bearer tokens in ``Authorization`` headers or ``?token=`` query strings). Three places could echo
them: Django's debug page, log lines, and daphne's access log; each goes through ``scrub`` here.
"""

import logging
import re
from typing import Any

from daphne.access import AccessLogGenerator
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

REDACTED = "[redacted]"
# Names that say "this value is a secret" (settings, environment variables, dict keys, variables).
SECRET_NAME_RE = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|_key$|^key$|authorization|cookie|credential|signature|dsn|private",
    re.I,
)
_PATTERNS = [
    # A URL with a password: keep the scheme, user and host so the line still says where.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^@\s'\"/]+@", re.I), r"\1" + REDACTED + "@"),
    # Authorization header values, whatever the scheme.
    (re.compile(r"\b(bearer|basic|token|digest)(\s+)[^\s'\",;]+", re.I), r"\1\2" + REDACTED),
    # token= / access_token= / api_key= style query or form values.
    (
        re.compile(r"\b((?:access_|api_|auth_)?(?:token|key|secret|password)=)[^&\s'\"]+", re.I),
        r"\1" + REDACTED,
    ),
    # The HQ's own bearer tokens, wherever they appear.
    (re.compile(r"\bjhq_[A-Za-z0-9_-]{8,}"), "jhq_" + REDACTED),
]


def scrub(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub_value(value: Any) -> Any:
    """``scrub`` through strings, dicts (by key name too), lists and tuples."""
    if isinstance(value, str):
        return scrub(str(value))  # str() also resolves lazy strings
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and SECRET_NAME_RE.search(k) and v else scrub_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(scrub_value(v) for v in value)
    return value


class SecretsFilter(SafeExceptionReporterFilter):
    """Django's filter, also hiding URLs with passwords and secret-looking names anywhere on the page."""

    hidden_settings = re.compile(
        r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DSN|CREDENTIAL|PRIVATE", re.I
    )

    def cleanse_setting(self, key, value):
        try:
            value = scrub_value(value)
        except Exception:  # a setting we cannot read through is not shown at all
            return self.cleansed_substitute
        return super().cleanse_setting(key, value)

    def get_safe_request_meta(self, request):
        meta = super().get_safe_request_meta(request)
        return {
            k: (self.cleansed_substitute if SECRET_NAME_RE.search(k) else scrub_value(v))
            for k, v in meta.items()
        }

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (
                name,
                self.cleansed_substitute
                if SECRET_NAME_RE.search(name) or name == "raw"
                else _scrub_any(value),
            )
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]


def _scrub_any(value: Any) -> Any:
    """A frame variable: containers are scrubbed through; any other object by its repr (an exception
    whose message holds a URL, a client holding a key), which the debug page would print."""
    if isinstance(value, str | dict | list | tuple):
        return scrub_value(value)
    try:
        text = repr(value)
    except Exception:
        return value
    clean = scrub(text)
    return value if clean == text else clean


class SecretsReporter(ExceptionReporter):
    """The debug page's parts that Django does not filter: the URL, the query string, the message."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (k, REDACTED if SECRET_NAME_RE.search(k) else scrub(v)) for k, v in data["request_GET_items"]
            ]
        for key in ("request_insecure_uri", "exception_value"):
            if isinstance(data.get(key), str):
                data[key] = scrub(data[key])
        return data


class RedactingLogFilter(logging.Filter):
    """A logging filter (on the handlers) that scrubs the formatted message and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


class RedactingAccessLog(AccessLogGenerator):
    """daphne's access log without query-string tokens (``?token=`` opens a websocket)."""

    def write_entry(self, host, date, request, status=None, length=None, ident=None, user=None):
        super().write_entry(host, date, scrub(request), status, length, ident, user)
