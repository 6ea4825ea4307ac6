"""ISO 3166-1 alpha-2 country codes and the continent each belongs to.

Continents follow GeoNames (the assignment GeoIP databases and CDN country headers
use): transcontinental countries sit where GeoNames puts them (RU, CY in Europe;
TR, the Caucasus and Kazakhstan in Asia; EG in Africa). ``XK`` (Kosovo) is a
user-assigned code in wide use and is included.
"""

from __future__ import annotations

from typing import Final

CONTINENTS: Final[frozenset[str]] = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})

_BY_CONTINENT: Final[dict[str, str]] = {
    "AF": (
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY "
        "MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA "
        "ZM ZW"
    ),
    "AN": "AQ BV GS HM TF",
    "AS": (
        "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA "
        "LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE"
    ),
    "EU": (
        "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT "
        "JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK"
    ),
    "NA": (
        "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS "
        "MX NI PA PM PR SV SX TC TT US VC VG VI"
    ),
    "OC": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS",
    "SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
}

COUNTRY_CONTINENT: Final[dict[str, str]] = {
    country: continent
    for continent, countries in _BY_CONTINENT.items()
    for country in countries.split()
}
"""Every officially assigned ISO 3166-1 alpha-2 code (249) plus XK -> continent code."""


def normalise_country(value: str) -> str | None:
    """The upper-cased ISO code if ``value`` is one (``de`` -> ``DE``), else None."""
    code = value.strip().upper()
    return code if code in COUNTRY_CONTINENT else None


def continent_of(country_iso: str) -> str | None:
    """The continent code (AF AN AS EU NA OC SA) of an ISO 3166-1 alpha-2 country code."""
    return COUNTRY_CONTINENT.get(country_iso.strip().upper())
