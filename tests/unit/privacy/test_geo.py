"""Country -> continent table: complete, and each code lands on a valid continent."""

from __future__ import annotations

from collections import Counter

import pytest

from caret_otel.processors.privacy.geo import (
    CONTINENTS,
    COUNTRY_CONTINENT,
    continent_of,
    normalise_country,
)


def test_table_covers_iso_3166_plus_kosovo() -> None:
    # 249 officially assigned ISO 3166-1 alpha-2 codes, plus the user-assigned XK.
    assert len(COUNTRY_CONTINENT) == 250
    assert all(len(code) == 2 and code.isalpha() and code.isupper() for code in COUNTRY_CONTINENT)
    assert set(COUNTRY_CONTINENT.values()) == CONTINENTS
    assert Counter(COUNTRY_CONTINENT.values()) == {
        "AF": 58,
        "AN": 5,
        "AS": 53,
        "EU": 53,
        "NA": 41,
        "OC": 26,
        "SA": 14,
    }


@pytest.mark.parametrize(
    ("country", "continent"),
    [
        ("KR", "AS"),
        ("kr", "AS"),
        ("JP", "AS"),
        ("TR", "AS"),
        ("DE", "EU"),
        ("RU", "EU"),
        ("GB", "EU"),
        ("US", "NA"),
        ("MX", "NA"),
        ("BR", "SA"),
        ("AU", "OC"),
        ("NZ", "OC"),
        ("EG", "AF"),
        ("ZA", "AF"),
        ("AQ", "AN"),
        ("XK", "EU"),
        ("CW", "NA"),
        ("UM", "OC"),
    ],
)
def test_known_countries(country: str, continent: str) -> None:
    assert continent_of(country) == continent


@pytest.mark.parametrize("value", ["", "EU", "UK", "XX", "T1", "DEU", "Germany"])
def test_non_countries_are_rejected(value: str) -> None:
    assert normalise_country(value) is None
    assert continent_of(value) is None
