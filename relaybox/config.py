"""Settings, read once from ``RELAYBOX_*`` environment variables (SPEC section 0)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relaybox.core.retry import parse_schedule
from relaybox.crypto import secret_weakness

DEFAULT_RETRY_SCHEDULE = "4,16,64,256,1024,4096,16384,65536,262144"
# How an operator makes a strong secret (named when a configured one is refused).
GENERATE_COMMAND = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class Settings(BaseSettings):
    """Everything relaybox reads from its environment."""

    # hide_input_in_errors: a refused value (a secret) is never echoed into a log.
    model_config = SettingsConfigDict(
        env_prefix="RELAYBOX_", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Path("./relaybox-data")
    database_url: str | None = None
    secret_key: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    # Proxies whose X-Forwarded-For / -Proto `relaybox serve` believes: comma-separated
    # addresses or networks, or "*". Empty (the default): none, the TCP peer is the client.
    forwarded_allow_ips: str = ""

    bootstrap_user_secret: str | None = None
    bootstrap_org_secret: str | None = None

    dropbox_api_url: str = "https://api.dropboxapi.com"
    dropbox_content_url: str = "https://content.dropboxapi.com"
    dropbox_notify_url: str = "https://notify.dropboxapi.com"
    dropbox_www_url: str = "https://www.dropbox.com"

    # Google's hosts (OAuth consent, token and revocation, the Drive API v3).
    googledrive_api_url: str = "https://www.googleapis.com"
    googledrive_oauth_url: str = "https://oauth2.googleapis.com"
    googledrive_accounts_url: str = "https://accounts.google.com"
    # Entries per Drive listing or changes page (Drive allows up to 1000).
    googledrive_page_size: int = Field(default=1000, ge=1, le=1000)
    # How long a Drive push channel (`changes.watch`) is asked to last (Drive: a week at
    # most), and how long before it ends relaybox makes the next one.
    googledrive_channel_seconds: int = Field(default=86_400, ge=120, le=604_800)
    googledrive_channel_renew_seconds: int = Field(default=3_600, ge=30)

    allow_private_callbacks: bool = False
    # The sandbox's control API token (`/_sandbox/...`): required when set; a sandbox served
    # beyond loopback (`--sandbox-public`) generates and prints one when this is unset.
    sandbox_token: str | None = None
    # A PEM file of the CA certificates HTTPS callback URLs are verified against, instead of
    # the default ones (for endpoints behind a private CA). Unset: the default ones.
    callback_ca_bundle: Path | None = None
    retry_schedule: str = DEFAULT_RETRY_SCHEDULE
    delivery_timeout: float = Field(default=15.0, gt=0)
    max_in_flight: int = Field(default=8, ge=1)
    min_poll_interval: float = Field(default=60.0, ge=0)
    # Longpoll instances: seconds Dropbox may hold one files/list_folder/longpoll (30-480).
    longpoll_timeout: int = Field(default=120, ge=30, le=480)
    # An account with more entries than this is indexed in the background (`indexing: true`).
    index_foreground_limit: int = Field(default=10_000, ge=1)
    # Entries per Dropbox listing page (Dropbox allows up to 2000).
    dropbox_page_limit: int = Field(default=2000, ge=1, le=2000)
    # First back-off, in seconds, when a provider (Dropbox, Google) answers 5xx or cannot
    # be reached.
    dropbox_retry_base: float = Field(default=1.0, ge=0)

    # Received provider notifications are kept this many days (a record for operators).
    inbox_retention_days: float = Field(default=7.0, gt=0)
    # Delivered and failed notifications, with their events and attempts, are kept this many
    # days after they finished (store/retention.py); pending ones are kept until they finish.
    retention_days: float = Field(default=30.0, gt=0)
    # How often idle workers look for work that another process may have written.
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    # Change passes and delivery attempts one worker process runs at once.
    pass_concurrency: int = Field(default=32, ge=1)
    delivery_concurrency: int = Field(default=64, ge=1)
    # How long a worker owns a lease before another worker may take the job over.
    lease_seconds: float = Field(default=60.0, gt=0)

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            if entry != "*":
                ipaddress.ip_network(entry, strict=False)  # a ValueError names the entry
        return value

    @field_validator("bootstrap_user_secret", "bootstrap_org_secret")
    @classmethod
    def _bootstrap_secret_strong(cls, value: str | None) -> str | None:
        weakness = secret_weakness(value) if value else None  # empty: not set
        if weakness:
            raise ValueError(f"{weakness}; generate one with `{GENERATE_COMMAND}`")
        return value

    @model_validator(mode="after")
    def _bootstrap_secrets_differ(self) -> Settings:
        if self.bootstrap_user_secret and self.bootstrap_user_secret == self.bootstrap_org_secret:
            raise ValueError(
                "RELAYBOX_BOOTSTRAP_USER_SECRET and RELAYBOX_BOOTSTRAP_ORG_SECRET must differ"
            )
        return self

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return parse_schedule(self.retry_schedule)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'relaybox.db').as_posix()}"

    def webhook_uri(self, element_key: str) -> str:
        """Where a provider sends its notifications (api/receiver.py)."""
        return f"{self.public_url.rstrip('/')}/elements/api-v2/events/{element_key}"

    @property
    def dropbox_webhook_uri(self) -> str:
        return self.webhook_uri("dropbox")

    @model_validator(mode="after")
    def _channels_renewed_in_time(self) -> Settings:
        if self.googledrive_channel_renew_seconds >= self.googledrive_channel_seconds:
            raise ValueError(
                "RELAYBOX_GOOGLEDRIVE_CHANNEL_RENEW_SECONDS must be shorter than "
                "RELAYBOX_GOOGLEDRIVE_CHANNEL_SECONDS"
            )
        return self
