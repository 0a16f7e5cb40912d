"""A tiny stdlib HTTP client for the REST tests: any method, headers and body, and
multipart bodies built part by part (so tests can also build wrong ones)."""

from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

Part = tuple[str, bytes, "str | None"]  # (field name, value, filename or None for text)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Api:
    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.host, self.port, self.token = host, port, token

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        timeout: float = 30.0,
        auth: bool = True,
    ) -> Reply:
        if query:
            path += "?" + urlencode(query, quote_via=quote)
        sent = dict(headers or {})
        if auth and self.token and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.token}"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path: str, **query: str) -> Reply:
        return self.call("GET", path, query=query or None)

    def post_json(self, path: str, payload: Any, **options: Any) -> Reply:
        headers = {"Content-Type": "application/json", **options.pop("headers", {})}
        return self.call("POST", path, json.dumps(payload).encode(), headers, **options)

    def upload(
        self, parts: list[Part], query: dict[str, str] | None = None, **options: Any
    ) -> Reply:
        body, content_type = multipart(parts)
        headers = {"Content-Type": content_type, **options.pop("headers", {})}
        return self.call("POST", "/upload_file", body, headers, query=query, **options)

    def put_file(self, name: str, data: bytes, **fields: str) -> Reply:
        parts: list[Part] = [("name", name.encode(), None)]
        parts += [(key, value.encode(), None) for key, value in fields.items()]
        return self.upload([*parts, ("file", data, "upload.bin")])


def multipart(parts: list[Part]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
