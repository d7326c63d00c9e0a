"""Health probes of a service: what /health asks and how it judges the answer (the runbooks' health checks)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from bot.catalog.base import _http_url, _is_template, _Model

# --- health probes ------------------------------------------------------------------------------------------


class _ProbeBase(_Model):
    """`critical`: the probe stands for the whole service (its front door), so when it is down the service is down
    even if its dependencies answer (FA runbook, P0: "Health check endpoint returning 503")."""

    name: str
    description: str = ""
    timeout: float = Field(default=2.0, gt=0, le=30)
    critical: bool = False


class HttpProbe(_ProbeBase):
    kind: Literal["http"]
    url: str
    method: Literal["GET", "POST", "HEAD"] = "GET"
    json_body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: int = Field(default=200, ge=100, le=599)
    json_field: str | None = None
    ok_values: list[Any] = Field(default_factory=lambda: ["ok"])
    degraded_values: list[Any] = Field(default_factory=lambda: ["degraded"])

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class PostgresProbe(_ProbeBase):
    kind: Literal["postgres"]
    dsn: str


class RedisProbe(_ProbeBase):
    kind: Literal["redis"]
    url: str


class TcpProbe(_ProbeBase):
    kind: Literal["tcp"]
    host: str
    port: int | str

    @field_validator("port")
    @classmethod
    def _port(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not _is_template(value):
            if not value.isdigit():
                raise ValueError("expected a port number")
            value = int(value)
        if isinstance(value, int) and not 0 < value < 65536:
            raise ValueError("expected a port number between 1 and 65535")
        return value


Probe = Annotated[HttpProbe | PostgresProbe | RedisProbe | TcpProbe, Field(discriminator="kind")]
