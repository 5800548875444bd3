"""Streaming multipart parsing for uploads: the file part goes straight to disk as it arrives.

Nothing holds a whole upload in memory, and a file over the size limit stops being written at
the limit (the rest of the request is read and dropped, so the client gets the 400 cleanly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from emulator.errors import ApiError, bad_request

MAX_FIELD_BYTES = 64 * 1024


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0
    too_large: bool = False


class _Receiver:
    """python-multipart callbacks: text fields into `fields`, the `file` part into `dest`."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.upload = Upload()
        self.out: BinaryIO | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._field = bytearray()

    def on_part_begin(self) -> None:
        self._disposition, self._field, self._is_file = b"", bytearray(), False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options and self._name == "file":
            if self.out is not None:
                raise bad_request("Only one file can be uploaded per request.", param="file")
            self._is_file = True
            self.upload.filename = options[b"filename"].decode("utf-8", "replace")
            self.out = self.dest.open("wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            assert self.out is not None
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                self.upload.too_large = True
            else:
                self.out.write(data[start:end])
        elif len(self._field) + end - start > MAX_FIELD_BYTES:
            raise bad_request(f"The form field '{self._name}' is too long.", param=self._name)
        else:
            self._field += data[start:end]

    def on_part_end(self) -> None:
        if not self._is_file:
            self.upload.fields[self._name] = self._field.decode("utf-8", "replace")


async def receive(request: Request, dest: Path, max_bytes: int) -> Upload:
    """Parse a multipart upload; the `file` part ends up in `dest` (deleted on any error)."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise bad_request("The upload must be multipart/form-data.")
    receiver = _Receiver(dest, max_bytes)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
        },
    )
    problem: ApiError | None = None
    try:
        async for chunk in request.stream():
            if problem is None:  # after a problem, read on so the client gets the answer cleanly
                try:
                    parser.write(chunk)
                except FormParserError:
                    problem = bad_request("The multipart body is malformed.")
                except ApiError as exc:
                    problem = exc
        if problem is None:
            parser.finalize()
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        if receiver.out is not None:
            receiver.out.close()
    if problem is not None:
        dest.unlink(missing_ok=True)
        raise problem
    return receiver.upload
