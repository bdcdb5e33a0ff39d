"""Structured logs: one JSON object per line on stdout, request ID bound to every line of a request.

Everything that logs through the standard library (uvicorn, libraries) is rendered by the same
structlog processors, so the whole process speaks one format. Logs go to stdout only; the platform
collects them (no log files on a replica's disk).

What a line costs is paid on every request of every replica, so the path is kept short:

- A call below ``LOG_LEVEL`` returns at once: the level is checked before any processor runs
  (structlog's filtering bound logger), not after the line was built.
- The service's own lines skip the standard library's records and handlers: structlog renders
  them straight to a string. Lines from the standard library go through one handler that renders
  them with the same processors.
- Rendering happens on the calling thread (it reads the request's context), the write does not:
  lines go to a bounded queue that one writer thread empties to stdout, several lines per write.
  The event loop never waits for a slow pipe unless the queue is full (then it waits rather than
  drop lines). The queue is flushed when the process exits, SIGTERM included (the server exits
  through its normal shutdown), so no line that was logged is lost. A forked child (a Celery
  pool process) writes each line itself: the thread does not survive a fork.
- Writes are at most PIPE_BUF bytes (``pipe_chunks``), so lines of several server processes
  sharing one stdout (WEB_CONCURRENCY) never interleave within a line.
- The access line, written once per request, skips the processor chain: ``log_request`` builds
  the same keys in the same order as the chain would (a test compares the two) and queues it.
"""

import atexit
import itertools
import json
import logging
import operator
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

import orjson
import structlog

from .request_id import current_request_id

# Lines waiting for the writer. Past it, a logging call waits for room: a full queue means stdout
# is not keeping up, and waiting keeps memory bounded without losing lines.
QUEUE_CAPACITY = 10_000
# Lines joined into one write: one system call per batch instead of one per line.
BATCH_LINES = 256
# After the first line of a batch, the writer waits this long for more: under load it wakes (and
# takes the interpreter lock from the event loop) once per batch instead of once per line.
BATCH_WAIT_SECONDS = 0.005
_STOP = object()


def utc_timestamp() -> str:
    """Now in UTC as ISO 8601 with microseconds and ``Z`` (structlog's ``TimeStamper(fmt="iso",
    utc=True)`` format), the date and time of day formatted once per second, not once per line."""
    second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    cached_second, prefix = _formatted_second
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _set_formatted_second(second, prefix)
    microseconds = nanoseconds // 1000
    return f"{prefix}.{microseconds:06d}Z" if microseconds else f"{prefix}Z"


# One tuple, replaced whole: a thread never reads one second's prefix with another's.
_formatted_second: tuple[int, str] = (-1, "")


def _set_formatted_second(second: int, prefix: str) -> None:
    global _formatted_second
    _formatted_second = (second, prefix)


def add_timestamp(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    event_dict["timestamp"] = utc_timestamp()
    return event_dict


def json_line(event: dict[str, Any], **options: Any) -> str:
    """One JSON object on one line. orjson writes it in about a tenth of ``json.dumps``' time;
    what orjson refuses (an integer past 64 bits, say) ``json.dumps`` writes instead, so a log
    call never fails on a value."""
    try:
        return orjson.dumps(
            event, default=options.get("default"), option=orjson.OPT_NON_STR_KEYS
        ).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(event, **options)


_JSON_RENDERER = structlog.processors.JSONRenderer(serializer=json_line)
ACCESS_LOGGER = "access"


class LineWriter:
    """Writes rendered lines to a stream from a thread of its own, in batches.

    The queue is a ``SimpleQueue``: its ``put`` takes no lock a signal handler could find held
    (the server logs from its SIGTERM handler, and a second signal may interrupt the first).
    """

    def __init__(self, stream: TextIO, capacity: int = QUEUE_CAPACITY) -> None:
        self.stream = stream
        self.capacity = capacity
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="log-writer", daemon=True
        )
        self._thread.start()
        self._direct = threading.RLock()
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    def put(self, line: str) -> None:
        # The stream as configured now (configure_logging may switch it while lines wait).
        stream = self.stream
        if self._thread is None:
            with self._direct:
                self._write(stream, line + "\n")
            return
        while self._queue.qsize() >= self.capacity and self._thread.is_alive():
            time.sleep(0.001)  # stdout is behind: wait for room rather than drop the line
        self._queue.put((stream, line))

    def flush(self, timeout: float = 10.0) -> None:
        """Return once every line put so far is written."""
        if self._thread is not None and self._thread.is_alive():
            written = threading.Event()
            self._queue.put(written)
            written.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _after_fork_in_child(self) -> None:
        # The thread does not survive a fork, and a forked child may end with os._exit (a
        # Celery pool process does), which skips atexit: such a child writes each line itself.
        # Lines the parent had queued are the parent's to write.
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._direct = threading.RLock()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            if batch[0] is not _STOP and self._queue.qsize() < BATCH_LINES:
                time.sleep(BATCH_WAIT_SECONDS)
            while len(batch) < BATCH_LINES:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = [item for item in batch if isinstance(item, tuple)]
            for stream, group in itertools.groupby(lines, key=operator.itemgetter(0)):
                for chunk in pipe_chunks(line for _, line in group):
                    self._write(stream, chunk)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if _STOP in batch:
                return

    @staticmethod
    def _write(stream: TextIO, text: str) -> None:
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # stdout closed or gone: nowhere left to report it
            return


def pipe_chunks(lines: Iterable[str], limit: int = select.PIPE_BUF) -> Iterator[str]:
    """The lines, newline-terminated, joined into writes of at most ``limit`` bytes (a longer
    line alone). A pipe takes a write of up to PIPE_BUF bytes whole, so the server processes of
    one container (WEB_CONCURRENCY), which share stdout, never split each other's lines."""
    chunk: list[str] = []
    size = 0
    for line in lines:
        length = (len(line) if line.isascii() else len(line.encode())) + 1
        if chunk and size + length > limit:
            yield "\n".join(chunk) + "\n"
            chunk, size = [], 0
        chunk.append(line)
        size += length
    if chunk:
        yield "\n".join(chunk) + "\n"


_writer: LineWriter | None = None
_access: "AccessLine | None" = None


def _line_writer(stream: TextIO) -> LineWriter:
    global _writer
    if _writer is None:
        _writer = LineWriter(stream)
        atexit.register(_writer.close)
    else:
        _writer.stream = stream
    return _writer


def flush_logs() -> None:
    """Wait until every line logged so far is written (tests read stdout after this)."""
    if _writer is not None:
        _writer.flush()


class QueuedLineLogger:
    """The logger structlog hands its rendered line to: the line goes to the writer's queue."""

    def __init__(self, name: str, writer: LineWriter) -> None:
        self.name = name  # read by structlog's add_logger_name
        self._writer = writer

    def msg(self, line: str) -> None:
        self._writer.put(line)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


class QueuedLineLoggerFactory:
    def __init__(self, writer: LineWriter) -> None:
        self.writer = writer

    def __call__(self, name: str = "", *args: Any) -> QueuedLineLogger:
        return QueuedLineLogger(name, self.writer)


class QueueingHandler(logging.Handler):
    """The standard library's side: renders a record (on the calling thread, which holds the
    request's context) and queues the line."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.put(self.format(record))
        except Exception:
            self.handleError(record)


def configure_logging(
    level: str = "INFO", fmt: str = "json", service: str = "", stream: TextIO | None = None
) -> None:
    """Log ``level`` and above as JSON (or console) lines to ``stream`` (default: stdout)."""
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_timestamp,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    if service:
        shared_processors.insert(0, _add_service(service))
    renderer: structlog.types.Processor = (
        _JSON_RENDERER if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    # The stream of this moment, not whatever sys.stdout is later: Celery's worker replaces
    # sys.stdout with a proxy that logs what is written to it, which would loop.
    writer = _line_writer(stream or sys.stdout)
    global _access
    access_logged = logging.getLevelNamesMapping()[level] <= logging.INFO
    _access = AccessLine(writer, service) if fmt == "json" and access_logged else None
    structlog.configure(
        processors=[*shared_processors, renderer],
        logger_factory=QueuedLineLoggerFactory(writer),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        cache_logger_on_first_use=True,
    )
    handler = QueueingHandler(writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own handlers would print a second, plain-text copy; route them to the root logger.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Access lines come from our middleware (with request ID, without probe noise).
    logging.getLogger("uvicorn.access").disabled = True


class AccessLine:
    """The per-request access line as JSON, built directly: the keys and order the processor
    chain gives an ``info`` call on the ``access`` logger, for a fraction of its cost."""

    def __init__(self, writer: LineWriter, service: str) -> None:
        self.writer = writer
        self.service = service

    def write(self, fields: dict[str, Any]) -> None:
        fields["event"] = "request"
        if self.service:
            fields.setdefault("service", self.service)
        for key, value in structlog.contextvars.get_contextvars().items():
            fields.setdefault(key, value)
        request_id = current_request_id()
        if request_id is not None:
            fields.setdefault("request_id", request_id)
        fields["level"] = "info"
        fields["logger"] = ACCESS_LOGGER
        fields["timestamp"] = utc_timestamp()
        self.writer.put(json_line(fields))


def log_request(**fields: Any) -> None:
    """Write the access line of one request (``info`` on the ``access`` logger)."""
    if _access is not None:
        _access.write(fields)
    else:  # console format, a level above INFO, or logging not configured: the ordinary path
        structlog.get_logger(ACCESS_LOGGER).info("request", **fields)


def add_request_id(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """The ID of the request being handled, on every line written while it is (a context
    variable of its own: cheaper per request than binding it in structlog's)."""
    request_id = current_request_id()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _add_service(service: str) -> structlog.types.Processor:
    def add_service(
        _logger: object, _method: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
