"""Structured logs: one JSON object a line on stderr, for the service and the worker."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "color_message"}


ROW_VALUES = re.compile(r"(Failing row contains |Key \(.*?\)=)\(.*\)")
"""PostgreSQL's error details quote the values of the row a statement failed on: subscribers'
data, which a log must not carry (SQLAlchemy's own copy of them is off: `hide_parameters`)."""


def without_row_values(text: str) -> str:
    return ROW_VALUES.sub(r"\1(values hidden)", text)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        line = {"at": at.isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name,
                "message": without_row_values(record.getMessage())}
        line.update({k: v for k, v in record.__dict__.items() if k not in STANDARD})
        if record.exc_info:
            line["exception"] = without_row_values(self.formatException(record.exc_info))
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("apscheduler.executors", "apscheduler.scheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
