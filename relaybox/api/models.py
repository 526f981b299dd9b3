"""The platform API's request and answer models, for the OpenAPI document and its clients.

Answers are validated against these models on their way out (`response_model`, with
`response_model_exclude_unset` so that a field the answer leaves out stays out): each model
allows extra fields, so nothing relaybox answers is dropped. Request bodies are still read
by `core/instance_request.py` and `core/instance_config.py`, which keep their messages
naming the field; these models describe exactly what those accept (tests/integration/
test_api_schema.py generates requests from the document and checks that every one the
schema allows is accepted, and every answer matches it). What a schema cannot say (a code
Dropbox refuses, a callback host that resolves to a private address) is a 400 listed in
the operation's description.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from relaybox.core.instance_config import MASK, MAX_KEY_LENGTH, MAX_KEYS, MAX_VALUE_LENGTH
from relaybox.core.instance_request import ELEMENT_INFO, MAX_NAME, MAX_TAG, MAX_TAGS

# --- patterns ----------------------------------------------------------------------------

_SPACES = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What `float()` skips around a number; `str.strip()` also removes \\x1c-\\x1f. (JSON
Schema's `\\s` differs: it has \\ufeff, and lacks \\x1c-\\x1f and \\x85.)"""
_SPACE = rf"[{_SPACES}\x1c-\x1f]"
_NOT_SPACE = rf"[^{_SPACES}\x1c-\x1f]"


def _words(*words: str) -> str:
    """One of `words`, with any surrounding white space (the server strips values)."""
    return rf"^{_SPACE}*({'|'.join(words)}){_SPACE}*$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


_HOST_LABELS = r"[A-Za-z0-9_-][A-Za-z0-9._-]*"
CALLBACK_URL = (
    rf"^{_SPACE}*(https?://{_HOST_LABELS}(:[1-9][0-9]{{0,3}})?(/[!-\[\]-~]*)?)?{_SPACE}*$"
)
"""An http or https URL with a host name and no user name, space or backslash; or nothing
(no callback URL). Relaybox also accepts IPv6 literals and internationalized host names."""
_BASE64_END = r"([A-Za-z0-9+/]{2}={0,2}|[A-Za-z0-9+/]{3}=?)"
_BASE64 = rf"(([A-Za-z0-9+/]{{4}})+{_BASE64_END}?|{_BASE64_END})"
"""Base64 of at least one byte, padding optional."""
SIGNATURE_KEY = rf"^{_SPACE}*(whsec_{_BASE64}|(?!whsec_){_NOT_SPACE}[\s\S]*?)?{_SPACE}*$"
MINUTES = rf"^[{_SPACES}]*0*([1-9][0-9]{{0,3}}(\.[0-9]*)?|\.0*[1-9][0-9]*)[{_SPACES}]*$"
BOOLEAN_TEXT = _words(_any_case("true"), _any_case("false"))
TRUE_TEXT = _words(_any_case("true"))
KEY_NAME = r"^[ -~]+$"
"""Keys of the client's own: printable ASCII here (relaybox accepts any printable text)."""

# --- values ------------------------------------------------------------------------------

Text = Annotated[
    str,
    Field(max_length=MAX_VALUE_LENGTH, pattern=_NOT_SPACE),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_VALUE_LENGTH,
            "pattern": _NOT_SPACE,
            "not": {"const": MASK},
        }
    ),
]
"""A non-blank string (white space around it is stripped); `********` means "unchanged"."""
Credential = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": MAX_VALUE_LENGTH,
            "pattern": rf"^{_SPACE}*[!-~]+{_SPACE}*$",
            "not": {"const": MASK},
        }
    ),
]
"""An app key, app secret or access token: visible ASCII characters."""
Flag = Annotated[
    bool | str,
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string", "pattern": BOOLEAN_TEXT}]}),
]
Minutes = Annotated[
    float | str,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 7 * 24 * 60},
                {"type": "string", "pattern": MINUTES},
            ]
        }
    ),
]
AuthType = Annotated[str, Field(pattern=_words("oauth2", "apiKey"))]
VendorType = Annotated[str, Field(pattern=_words("webhooks", "webhook", "polling", "longpoll"))]
CallbackUrl = Annotated[str, Field(max_length=2048, pattern=CALLBACK_URL)]
SignatureKey = Annotated[str, Field(max_length=MAX_VALUE_LENGTH, pattern=SIGNATURE_KEY)]
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""A UTC time as `2026-11-30T03:45:08Z`."""


def _open(description: str) -> ConfigDict:
    return ConfigDict(extra="allow", json_schema_extra={"description": description})


# --- errors ------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error answer of the platform API (api/errors.py)."""

    model_config = ConfigDict(extra="forbid")
    requestId: str
    message: str = Field(description="What is wrong, naming the field.")
    providerMessage: str | SkipJsonSchema[None] = Field(
        default=None, description="The provider's own words, when the provider refused."
    )


_ERROR_TEXT = {
    400: "Bad input: the message names the field.",
    401: "No credentials, or credentials that are not valid.",
    403: "The signature does not match.",
    404: "No such object for this caller (another organization's objects are not found either).",
    409: "The request clashes with the current state; try again.",
    413: "The request body is larger than 1 MiB.",
    429: "Too many failed authentications from this address; wait `Retry-After` seconds.",
    500: "An unexpected error; the server's log has it.",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}},
}


def errors(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of these error statuses, each with the error body's schema.
    `described` adds to a status's text: `errors(400, 404, e400="...")`."""
    answers: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        text = _ERROR_TEXT[code]
        if f"e{code}" in described:
            text = f"{text} {described[f'e{code}']}"
        answer: dict[str, Any] = {"model": ErrorBody, "description": text}
        if code in _ERROR_HEADERS:
            answer["headers"] = _ERROR_HEADERS[code]
        answers[code] = answer
    return answers


AUTHENTICATED = errors(401, 429, 500)
"""The errors any authenticated operation may answer."""

PAGE_HEADERS = {
    "Elements-Next-Page-Token": {
        "schema": {"type": "string"},
        "description": "Present when there is a next page: pass it back as `nextPage`.",
    }
}

# --- requests ----------------------------------------------------------------------------


ELEMENT_KEYS = sorted(ELEMENT_INFO)
ELEMENT_KEYS_AND_IDS = sorted([*ELEMENT_INFO, *(str(n) for n, _ in ELEMENT_INFO.values())])
"""What `/elements/{keyOrId}/...` takes: an element's key or the anchor platform's id."""
ElementKey = Annotated[str, WithJsonSchema({"type": "string", "enum": ELEMENT_KEYS})]


class ElementRef(BaseModel):
    model_config = _open("The connector, by its key.")
    key: ElementKey


class ElementRefOptional(BaseModel):
    model_config = _open("The connector; the path's when left out.")
    key: ElementKey | SkipJsonSchema[None] = None


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=_NOT_SPACE)]
Tags = Annotated[list[Annotated[str, Field(max_length=MAX_TAG)]], Field(max_length=MAX_TAGS)]
Code = Annotated[str, Field(min_length=1, max_length=4096)]


class ProviderData(BaseModel):
    model_config = _open("What the provider gave the user.")
    code: Code | None = Field(
        default=None, description="The OAuth authorization code, exchanged at once."
    )


class ProviderCode(BaseModel):
    model_config = _open("What the provider gave the user.")
    code: Code = Field(description="The OAuth authorization code, exchanged at once.")


_EVENTS_NEED_CALLBACK = {
    "if": {
        "properties": {
            "event.notification.enabled": {
                "anyOf": [{"const": True}, {"type": "string", "pattern": TRUE_TEXT}]
            }
        },
        "required": ["event.notification.enabled"],
    },
    "then": {
        "properties": {"event.notification.callback.url": {"pattern": _NOT_SPACE}},
        "required": ["event.notification.callback.url"],
    },
}


def _configuration_schema(
    description: str | None = None, required: tuple[str, ...] = (), auth_type: str | None = None
) -> Callable[[dict[str, Any]], None]:
    """The JSON schema of a configuration: bounds on the client's own keys, and for a
    create, what its authentication type requires."""

    def amend(schema: dict[str, Any]) -> None:
        schema["maxProperties"] = MAX_KEYS - 4  # relaybox's own four are always set
        schema["propertyNames"] = {"minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_NAME}
        schema["additionalProperties"] = {
            "description": "A key of the client's own: any JSON value (its JSON text at most "
            f"{MAX_VALUE_LENGTH} characters)."
        }
        if description:
            schema["description"] = description
        if required:
            schema["required"] = list(required)
        if auth_type:
            schema["properties"]["authentication.type"] = {
                "type": "string",
                "pattern": _words(auth_type),
                "description": f"`{auth_type}`.",
            }
            schema.update(_EVENTS_NEED_CALLBACK)

    return amend


class Configuration(BaseModel):
    """An instance's configuration: the keys relaybox acts on, and any other key of the
    client's own (kept as given and echoed back; `null` removes it)."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        regex_engine="python-re",
        json_schema_extra=_configuration_schema(),
    )

    authentication_type: AuthType | SkipJsonSchema[None] = Field(
        default=None,
        alias="authentication.type",
        description="`oauth2` (the default) or `apiKey`.",
    )
    oauth_api_key: Credential | SkipJsonSchema[None] = Field(
        default=None, alias="oauth.api.key", description="The Dropbox app's key."
    )
    oauth_api_secret: Credential | SkipJsonSchema[None] = Field(
        default=None,
        alias="oauth.api.secret",
        description="The Dropbox app's secret (stored encrypted, answered masked).",
    )
    oauth_callback_url: Text | SkipJsonSchema[None] = Field(
        default=None,
        alias="oauth.callback.url",
        description="The redirect URI the code was issued for.",
    )
    dropbox_access_token: Credential | SkipJsonSchema[None] = Field(
        default=None,
        alias="dropbox.access_token",
        description="`apiKey` instances: a Dropbox access token (stored encrypted).",
    )
    events_enabled: Flag | SkipJsonSchema[None] = Field(
        default=None,
        alias="event.notification.enabled",
        description="Send events to the callback URL (`true`/`false`, or those words).",
    )
    callback_url: CallbackUrl | SkipJsonSchema[None] = Field(
        default=None,
        alias="event.notification.callback.url",
        description="Where events are POSTed; required when events are enabled.",
    )
    signature_key: SignatureKey | SkipJsonSchema[None] = Field(
        default=None,
        alias="event.notification.signature.key",
        description="Signs each notification (a `whsec_` key is base64 after the prefix).",
    )
    ordered: Flag | SkipJsonSchema[None] = Field(
        default=None,
        alias="event.notification.ordered",
        description="Strict per-instance order of delivery.",
    )
    vendor_type: VendorType | SkipJsonSchema[None] = Field(
        default=None,
        alias="event.vendor.type",
        description="Where changes come from: `webhooks` (the default), `polling`, `longpoll`.",
    )
    poll_minutes: Minutes | SkipJsonSchema[None] = Field(
        default=None,
        alias="event.poller.refresh_interval",
        description="Minutes between polls (fractions allowed), polling only.",
    )


class OAuth2Configuration(Configuration):
    model_config = ConfigDict(
        json_schema_extra=_configuration_schema(
            "An `oauth2` instance's configuration: the app's key and secret are required.",
            ("oauth.api.key", "oauth.api.secret"),
            "oauth2",
        )
    )


class ApiKeyConfiguration(Configuration):
    model_config = ConfigDict(
        json_schema_extra=_configuration_schema(
            "An `apiKey` instance's configuration: a Dropbox access token, and the app's "
            "secret to verify webhooks.",
            ("authentication.type", "dropbox.access_token", "oauth.api.secret"),
            "apiKey",
        )
    )


class _InstanceFields(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Name = Field(description="Any name (names need not be unique).")
    tags: Tags | None = None


class OAuth2InstanceCreate(_InstanceFields):
    """A new `oauth2` instance (SPEC sections 1 and 9). Fields relaybox does not know are
    ignored; configuration keys it does not act on are kept."""

    element: ElementRef
    providerData: ProviderCode
    configuration: OAuth2Configuration


class ApiKeyInstanceCreate(_InstanceFields):
    """A new `apiKey` instance (a Dropbox access token given directly)."""

    element: ElementRef
    providerData: ProviderData | None = None
    configuration: ApiKeyConfiguration


class OAuth2ElementInstanceCreate(OAuth2InstanceCreate):
    """A new `oauth2` instance of the path's element (`element` may be left out)."""

    element: ElementRefOptional | SkipJsonSchema[None] = None  # type: ignore[assignment]


class ApiKeyElementInstanceCreate(ApiKeyInstanceCreate):
    """A new `apiKey` instance of the path's element (`element` may be left out)."""

    element: ElementRefOptional | SkipJsonSchema[None] = None  # type: ignore[assignment]


class InstanceUpdate(BaseModel):
    """Changes to an instance: only what is given changes (`null` leaves a field as it
    is). With `providerData.code` the instance is re-authenticated (re-provisioned)."""

    model_config = ConfigDict(extra="allow")
    name: Name | None = None
    tags: Tags | None = None
    element: ElementRef | SkipJsonSchema[None] = None
    providerData: ProviderData | None = None
    configuration: Configuration | None = None


class PropertyValue(BaseModel):
    """One configuration key's new value, validated like the same key in `PATCH
    /instances/{id}`; `null` removes a key of the client's own."""

    model_config = ConfigDict(extra="allow")
    propertyValue: Any = Field(description="The key's value (see `Configuration`).")
    key: str | SkipJsonSchema[None] = Field(
        default=None, description="When given, the key this id stands for."
    )


class Subscription(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool = Field(strict=True, description="`false` pauses deliveries, `true` resumes.")


# --- answers -----------------------------------------------------------------------------


class Element(BaseModel):
    model_config = _open("The connector.")
    id: int
    key: str
    name: str


class InstanceUser(BaseModel):
    model_config = _open("The user who created the instance.")
    id: int
    emailAddress: str
    firstName: str
    lastName: str


class InstanceProviderData(BaseModel):
    model_config = _open("The provider account.")
    accountId: str | None


class Instance(BaseModel):
    """A connector instance, every secret masked (`********`)."""

    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    token: str = Field(description="The instance token (`Element <token>`).")
    element: Element
    elementId: int
    tags: list[str]
    valid: bool = Field(description="`false` when the provider refused its credentials.")
    disabled: bool
    eventsEnabled: bool
    indexing: bool = Field(description="`true` while a large account is indexed.")
    providerData: InstanceProviderData
    configuration: dict[str, Any] = Field(description="As given, secrets masked.")
    createdDate: Timestamp
    updatedDate: Timestamp
    eventSource: Literal["webhooks", "polling", "longpoll"] | SkipJsonSchema[None] = None
    lastPollDate: Timestamp | None = None
    nextPollDate: Timestamp | None = None
    statusMessage: str | SkipJsonSchema[None] = None
    user: InstanceUser | SkipJsonSchema[None] = None


class ConfigurationItem(BaseModel):
    model_config = _open("One configuration key: its id is the same in every instance.")
    id: int
    key: str
    name: str
    propertyValue: str | None = Field(description="The value as text; `null` when not set.")


class StandardEvent(BaseModel):
    model_config = _open("One standardized event.")
    elementKey: str
    hubKey: str
    eventType: Literal["CREATED", "UPDATED", "DELETED", "UNKNOWN"]
    objectType: str
    objectId: str
    path: str | None
    date: Timestamp
    newPath: str | SkipJsonSchema[None] = None


DeliveryStatus = Literal["pending", "delivered", "failed"]


class EventLogEntry(BaseModel):
    """One notification as the event log shows it: the anchor's fields, then relaybox's."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(description="The `message.eventId` its callback received.")
    eventDate: Timestamp
    status: Literal["RECEIVED", "DISPATCHED", "NOTIFIED", "FAILED"]
    providerData: str = Field(description="`message.raw` as JSON text.")
    notifiedData: list[StandardEvent]
    instanceId: int
    notificationId: str
    deliveryStatus: DeliveryStatus
    eventCount: int
    date: Timestamp


class Attempt(BaseModel):
    model_config = _open("One try to POST the notification.")
    date: Timestamp
    statusCode: int | None
    latencyMs: float | None
    error: str | None
    responseBody: str | None


class Delivery(BaseModel):
    model_config = _open("A notification and its attempts.")
    id: str
    instanceId: int
    status: DeliveryStatus
    eventCount: int
    createdDate: Timestamp
    deliveredDate: Timestamp | None
    nextAttemptDate: Timestamp | None
    attempts: list[Attempt]


class DeliveryWithBody(Delivery):
    model_config = _open("The notification, with the body as sent.")
    body: str


class EventLogDetail(EventLogEntry):
    model_config = _open("One event-log entry with its notification.")
    notification: DeliveryWithBody


class Redelivered(BaseModel):
    model_config = _open("How many notifications were queued again.")
    redelivered: int


class SubscriptionState(BaseModel):
    model_config = _open("Whether deliveries run.")
    active: bool


class OAuthUrl(BaseModel):
    model_config = _open("Where to send the user to connect an account.")
    element: str
    oauthUrl: str


ANSWERS: dict[str, Any] = {"response_model_exclude_unset": True}
"""Route options: an answer keeps exactly the fields it has (none added as `null`)."""


# --- request bodies in the OpenAPI document ----------------------------------------------

_REF = "#/components/schemas/{model}"
_BODIES: dict[str, type[BaseModel]] = {}


def request_body(*models: type[BaseModel]) -> dict[str, Any]:
    """A route's `openapi_extra` naming its JSON body's models (one of them), for a route
    that reads its body itself; `add_request_schemas` puts the models in the document."""
    for model in models:
        _BODIES[model.__name__] = model
    refs = [{"$ref": _REF.format(model=model.__name__)} for model in models]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_request_schemas(components: dict[str, Any]) -> None:
    """The schemas of every model `request_body` named, and of the models they use."""
    for name, model in _BODIES.items():
        schema = model.model_json_schema(ref_template=_REF)
        for sub, sub_schema in schema.pop("$defs", {}).items():
            components.setdefault(sub, _without_defaults(sub_schema))
        components[name] = _without_defaults(schema)


def _without_defaults(schema: Any) -> Any:
    """The schema without `"default": null` (an absent field is not sent as null)."""
    if isinstance(schema, dict):
        return {
            key: _without_defaults(value)
            for key, value in schema.items()
            if not (key == "default" and value is None)
        }
    if isinstance(schema, list):
        return [_without_defaults(value) for value in schema]
    return schema
