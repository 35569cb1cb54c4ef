"""
``--request-log FILE``: every exchange as one JSON object per line.

:class:`RequestLog` is a service and a sink of
:class:`~mockllm.observe.record.Recorder`.  Each record travels as a
``twisted.logger`` event (namespace ``mockllm.requestlog``, key ``record``)
to a ``twisted.logger.FileLogObserver`` writing into a
``twisted.python.logfile.LogFile``: one line per exchange, flushed as it is
written (a hard kill loses at most the line being written), rotated by size
into ``FILE.1`` ... ``FILE.<keep>``.  ``stopService`` closes the file; an
exchange that ends after that (a connection dropped at shutdown) is still
appended, by opening the file for that one line, so a SIGTERM loses nothing.
"""

from __future__ import annotations

import json

from twisted.application.service import Service
from twisted.logger import FileLogObserver, ILogObserver, Logger, LogEvent
from twisted.python.logfile import LogFile
from zope.interface import implementer

from mockllm.config.model import ObserveConfig
from mockllm.observe.record import Record
from mockllm.startup import StartFailed

_DEFAULTS = ObserveConfig()


def json_line(event: LogEvent) -> str | None:
    """The event's ``record`` as one line of JSON (ASCII, so ``LogFile`` counts its size exactly)."""
    record = event.get("record")
    if record is None:
        return None
    return json.dumps(record, separators=(",", ":"), default=str) + "\n"


@implementer(ILogObserver)
class RequestLog(Service):
    """Writes one JSON line per exchange to ``path``, rotating at ``max_bytes`` (0: never)."""

    log = Logger()

    def __init__(
        self, path: str, max_bytes: int = _DEFAULTS.request_log_max_bytes, keep: int = _DEFAULTS.request_log_keep
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._file: LogFile | None = None
        self._observer: FileLogObserver | None = None
        self._emitter = Logger(namespace="mockllm.requestlog", observer=self)
        self._failing = False

    def _open(self) -> LogFile:
        return LogFile.fromFullPath(self.path, rotateLength=self.max_bytes or None, maxRotatedFiles=self.keep)

    def startService(self) -> None:
        """Open (or append to) the file; exit with a readable reason if it cannot be opened."""
        try:
            self._file = self._open()
        except OSError as error:
            raise StartFailed(f"mockllm: cannot open the request log {self.path}: {error}") from None
        self._observer = FileLogObserver(self._file, json_line)
        super().startService()

    def stopService(self) -> None:
        """Close the file (every line is already flushed)."""
        super().stopService()
        log_file, self._file, self._observer = self._file, None, None
        if log_file is not None:
            log_file.close()

    def add(self, record: Record) -> None:
        """Log ``record`` (a :class:`~mockllm.observe.record.Recorder` sink)."""
        self._emitter.info("{record[method]} {record[path]}", record=record)

    def __call__(self, event: LogEvent) -> None:
        """Write ``event``'s record; never raises (a failure is logged once until writing works again)."""
        try:
            self._write(event)
        except OSError:
            if not self._failing:
                self.log.failure("mockllm: cannot write to the request log {path}", path=self.path)
            self._failing = True
        else:
            self._failing = False

    def _write(self, event: LogEvent) -> None:
        if self._observer is not None:
            self._observer(event)
            return
        late = self._open()
        try:
            FileLogObserver(late, json_line)(event)
        finally:
            late.close()
