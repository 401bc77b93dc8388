"""The suite-wide check that no secret reaches a log.

Every secret gridgeo issues carries a prefix (API tokens ``ggt_``, reporters' tokens
``ggr_``, map tickets ``ggm_``, console sessions ``ggs_``, webhook and hand-off secrets
``whsec_``; Open311's ``api_key`` is an API token), so a log can be
searched for them without knowing which were issued. :class:`Collector` sits on the root
logger for the whole session and keeps every record written in the test process, as a
deployed handler would write it; :func:`scan_logs` reads the log files of the servers the
tests started (under pytest's temporary folder).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

#: A gridgeo secret, long enough to be a real one (a redacted one reads ``ggt_[redacted]``).
SECRET = re.compile(r"\b(?:gg[tmrs]_|whsec_)[A-Za-z0-9_.+/=-]{16,}")


class Collector(logging.Handler):
    """Keeps the lines of every record that holds something like a secret."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not format: nothing of it is written
            return
        parts = [text, record.exc_text or ""]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        parts += [str(v) for k, v in vars(record).items() if k not in _STANDARD and isinstance(v, str)]
        hits = [m.group(0) for part in parts for m in SECRET.finditer(part)]
        self.leaks += [f"logger {record.name}: {hit[:12]}..." for hit in hits]


_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def scan_logs(folder: Path) -> list[str]:
    """Secrets in the ``*.log`` files under ``folder`` (file and the secret's first characters)."""
    leaks = []
    for path in sorted(folder.rglob("*.log")):
        text = path.read_text(errors="replace")
        leaks += [f"{path.name}: {m.group(0)[:12]}..." for m in SECRET.finditer(text)]
    return leaks
