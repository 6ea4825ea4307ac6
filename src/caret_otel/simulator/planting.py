"""Planted secrets: personal data and credentials put into every client field.

With ``--plant-secrets`` the simulator behaves like a careless or buggy client: it
puts e-mails, home-directory paths, bearer tokens, API keys, credential URLs, card
numbers, PEM private keys and IP addresses into the user id, the session id, every
string property, forbidden and unknown properties, nested values, ``client_info``,
the event type and the trusted country header. None of it may reach a sink: the
end-to-end test greps PostgreSQL, Prometheus and the Tempo/Loki stand-in for every
:attr:`PlantedSecret.needle`.

Each secret carries a *needle*: a distinctive part of it that survives JSON and SQL
escaping (no backslashes, quotes or newlines) and never occurs in honest traffic, so
finding it anywhere (case-insensitively: e-mails are lower-cased by some steps) proves
a leak.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Final

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as specs
from caret_otel.simulator.fields import forbidden_property_keys, property_key
from caret_otel.simulator.traffic import ClientEvent


@dataclass(frozen=True)
class PlantedSecret:
    kind: str
    value: str
    needle: str


PLANTED_SECRETS: Final[tuple[PlantedSecret, ...]] = (
    PlantedSecret("email", "minji.kim.planted@example.com", "minji.kim.planted"),
    PlantedSecret("email", "Jane.Planted-Doe@Example.CO.KR", "Jane.Planted-Doe"),
    PlantedSecret("path", "/home/alice-planted/work/caret/.env", "alice-planted"),
    PlantedSecret("path", "C:\\Users\\bob-planted\\source\\repos\\billing\\main.py", "bob-planted"),
    PlantedSecret("path", "/Users/carol-planted/dev/keys/id_ed25519", "carol-planted"),
    PlantedSecret("bearer_token", "Bearer eyJplantedBearer0123456789.abcdef", "eyJplantedBearer"),
    PlantedSecret(
        "api_key", "sk-ant-api03-PlantedKey7f3a9c21d4e8b6f0a1c3e5d7f9b2a4c6", "PlantedKey7f3a9c21"
    ),
    PlantedSecret(
        "url_credentials",
        "postgres://admin:PlantedPass4711@db.internal:5432/prod",
        "PlantedPass4711",
    ),
    PlantedSecret("card_number", "4111111111111111", "4111111111111111"),
    PlantedSecret("card_number", "3782 822463 10005", "3782 822463 10005"),
    PlantedSecret(
        "pem_key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEplantedPemBody0123456789abcdefABCDEF+/=\n"
        "-----END RSA PRIVATE KEY-----",
        "MIIEplantedPemBody",
    ),
    PlantedSecret("ipv4", "203.0.113.77", "203.0.113.77"),
    PlantedSecret("ipv6", "2001:db8:c0de::77", "2001:db8:c0de::77"),
    # Issue 16: detectors added with the value shapes (and glued into shaped values).
    PlantedSecret(
        "jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqd3RQbGFudGVkIn0.jwtPlantedSig0123", "jwtPlantedSig"
    ),
    PlantedSecret("api_key", "sk_live_stripePlanted0123456789", "stripePlanted"),
    PlantedSecret("national_id", "900101-1234567", "900101-1234567"),
    PlantedSecret("phone", "010-9876-5432", "9876-5432"),
    PlantedSecret("cloud_account", "arn:aws:iam::123456789012:user/dana-planted", "dana-planted"),
    PlantedSecret("email", "erin.planted\uff20example.com", "erin.planted"),
    PlantedSecret("path", "claude-sonnet-4/home/frank-planted/models/x.gguf", "frank-planted"),
)

NEEDLES: Final[tuple[str, ...]] = tuple(secret.needle for secret in PLANTED_SECRETS)
PLANT_EVERY: Final = 3
"""Every third event of a user carries planted secrets."""
POISONED_USER_EVERY: Final = 7
"""Every seventh user's client sends a raw e-mail address as its user id hash."""
UNKNOWN_PROPERTY: Final = "customer_note"
UNKNOWN_CLIENT_INFO: Final = "hostname"
POISONED_EVENT_TYPE_EVERY: Final = 40
"""Every 40th planted event is followed by one with a secret as its event type."""


def _secrets() -> Iterator[PlantedSecret]:
    return itertools.cycle(PLANTED_SECRETS)


def poisoned_user_id(index: int) -> str | None:
    """The raw e-mail a buggy client sends instead of a hash, for some users."""
    if index % POISONED_USER_EVERY != 3:
        return None
    return f"user{index}.{PLANTED_SECRETS[0].value}"


def poisoned_country(index: int) -> str | None:
    """A secret where the edge's country header should be, for some users' requests."""
    if index % POISONED_USER_EVERY != 5:
        return None
    return PLANTED_SECRETS[11].value


Planter = Callable[[ClientEvent, PlantedSecret], ClientEvent]


def _in_string_properties(event: ClientEvent, secret: PlantedSecret) -> ClientEvent:
    properties = {
        key: f"{value} {secret.value}" if isinstance(value, str) else value
        for key, value in event.properties.items()
    }
    return replace(event, properties=properties)


def _in_forbidden_properties(event: ClientEvent, secret: PlantedSecret) -> ClientEvent:
    extra = {key: secret.value for key in forbidden_property_keys()}
    return replace(event, properties={**event.properties, **extra})


def _in_unknown_properties(event: ClientEvent, secret: PlantedSecret) -> ClientEvent:
    extra: dict[str, object] = {
        UNKNOWN_PROPERTY: secret.value,
        secret.value: 1,  # a secret as a key
        "metadata": {"owner": secret.value, "paths": [secret.value]},
    }
    return replace(event, properties={**event.properties, **extra})


def _in_numbers_and_lists(event: ClientEvent, secret: PlantedSecret) -> ClientEvent:
    """Numbers replaced by secret strings, strings by lists holding a secret.

    The task id stays a string: it is required on task events, and a task event
    without it is rejected as a whole (which is not what this planter tests).
    """
    task_key = property_key(attrs.CARET_TASK_ID)
    properties: dict[str, object] = {}
    for key, value in event.properties.items():
        if isinstance(value, bool) or key == task_key:
            properties[key] = value
        elif isinstance(value, int | float):
            properties[key] = secret.value
        elif isinstance(value, str):
            properties[key] = [value, secret.value]
        else:
            properties[key] = value
    return replace(event, properties=properties)


def _in_client_info(event: ClientEvent, secret: PlantedSecret) -> ClientEvent:
    client_info = {key: f"{value} {secret.value}" for key, value in event.client_info.items()}
    client_info[UNKNOWN_CLIENT_INFO] = secret.value
    return replace(event, client_info=client_info)


def _in_session_id(event: ClientEvent, secret: PlantedSecret) -> ClientEvent:
    return replace(event, session_id=f"{secret.value}#{event.session_id}")


PLANTERS: Final[tuple[Planter, ...]] = (
    _in_string_properties,
    _in_forbidden_properties,
    _in_unknown_properties,
    _in_numbers_and_lists,
    _in_client_info,
    _in_session_id,
)
"""One planter per kind of client field; they take turns over the planted events."""


def plant_secrets(events: list[ClientEvent], user_index: int, seed: int) -> list[ClientEvent]:
    """The user's events with secrets planted in every kind of client field.

    (The user id is planted for the whole user, see :func:`poisoned_user_id`.)

    Consent events are left alone (their effect is what the opt-out check relies on), so
    are experiment exposures (the experiment's analysis relies on them);
    the extra events with a secret as event type are marked ``expect_rejected``.
    """
    rng = random.Random(f"caret-sim:{seed}:{user_index}:planting")
    secrets = _secrets()
    for _ in range(rng.randrange(len(PLANTED_SECRETS))):
        next(secrets)
    planters = itertools.cycle(PLANTERS)
    for _ in range(rng.randrange(len(PLANTERS))):
        next(planters)
    planted: list[ClientEvent] = []
    counter = 0
    for event in events:
        if _is_consent(event) or event.expect_opted_out or event.event_type == _EXPOSURE:
            planted.append(event)
            continue
        counter += 1
        if counter % PLANT_EVERY:
            planted.append(event)
            continue
        secret = next(secrets)
        planted.append(next(planters)(event, secret))
        if counter % (PLANT_EVERY * POISONED_EVENT_TYPE_EVERY) == 0:
            planted.append(replace(event, event_type=f"task.{secret.value}", expect_rejected=True))
    return planted


_CONSENT_TYPES: Final = frozenset(
    {specs.CARET_USER_OPT_OUT.client_event, specs.CARET_USER_OPT_IN.client_event}
)


_EXPOSURE: Final = specs.CARET_EXPERIMENT_EXPOSURE.client_event


def _is_consent(event: ClientEvent) -> bool:
    return event.event_type in _CONSENT_TYPES
