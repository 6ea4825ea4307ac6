"""Experiments as code: ``experiments/*.yaml``, validated against ``experiment.schema.json``.

The schema (JSON Schema 2020-12, next to the definitions) says what a definition holds;
:func:`load` adds the rules a schema cannot say: the file name is the key, keys are
unique, the weights add up to 1, the first variant is ``control``, the end is after the
start and a metric appears in one role only. Each error names the file and the field,
never a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import jsonschema
import yaml

from caret_otel.contracts.checkout import repo_root
from caret_otel.core.errors import InputError
from caret_otel.sdk import experiments as sdk_experiments
from caret_otel.sdk.experiments import ServedExperiment

SCHEMA_FILE: Final = "experiment.schema.json"
CONTROL: Final = "control"
DEFAULT_ALPHA: Final = 0.05
DEFAULT_POWER: Final = 0.8


class Method(StrEnum):
    """How an experiment's intervals and p-values are computed (docs/experiments.md)."""

    FIXED_HORIZON = "fixed-horizon"
    """One look, at the planned end (``sequential: false``)."""
    ALPHA_SPENDING = "alpha-spending"
    """Group-sequential: one look a day, Lan-DeMets O'Brien-Fleming-type alpha spending
    (the default)."""
    ALWAYS_VALID = "always-valid"
    """GrowthBook's always-valid confidence sequence: any number of looks."""


DEFAULT_SEQUENTIAL_METHOD: Final = Method.ALPHA_SPENDING


class ExperimentError(InputError):
    """An experiment definition breaks a rule; the message names the file and field."""


def default_directory() -> Path:
    """``experiments/`` of the checkout."""
    return repo_root() / "experiments"


@dataclass(frozen=True)
class Variant:
    key: str
    weight: float
    description: str = ""


@dataclass(frozen=True)
class Targeting:
    client_version_min: str | None = None
    client_version_below: str | None = None
    host_app: tuple[str, ...] = ()
    plan: tuple[str, ...] = ()
    language: tuple[str, ...] = ()
    country: tuple[str, ...] = ()

    def condition(self) -> dict[str, dict[str, object]]:
        """The GrowthBook condition clients evaluate (``$in``, ``$vgte``, ``$vlt``)."""
        condition: dict[str, dict[str, object]] = {}
        version: dict[str, object] = {}
        if self.client_version_min:
            version["$vgte"] = self.client_version_min
        if self.client_version_below:
            version["$vlt"] = self.client_version_below
        if version:
            condition[sdk_experiments.CLIENT_VERSION] = version
        for attribute, values in (
            (sdk_experiments.HOST_APP, self.host_app),
            (sdk_experiments.PLAN, self.plan),
            (sdk_experiments.LANGUAGE, self.language),
            (sdk_experiments.COUNTRY, self.country),
        ):
            if values:
                condition[attribute] = {"$in": list(values)}
        return condition


@dataclass(frozen=True)
class Experiment:
    key: str
    name: str
    hypothesis: str
    owner: str
    status: str
    seed: str
    coverage: float
    variants: tuple[Variant, ...]
    start: date
    end: date | None
    targeting: Targeting
    primary_metric: str
    secondary_metrics: tuple[str, ...]
    guardrail_metrics: tuple[str, ...]
    minimum_detectable_effect: float
    alpha: float
    power: float
    sequential: bool
    sequential_method: Method = DEFAULT_SEQUENTIAL_METHOD
    planned_users: int | None = None
    """Users (all variants) at the planned end: alpha spending's information fraction is
    users so far / planned_users. Without it, projected from the pace so far to ``end``."""
    path: Path | None = None

    @property
    def method(self) -> Method:
        """The test ``analyze`` and ``plan`` use."""
        return self.sequential_method if self.sequential else Method.FIXED_HORIZON

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(v.weight for v in self.variants)

    @property
    def variant_keys(self) -> tuple[str, ...]:
        return tuple(v.key for v in self.variants)

    def is_active(self, today: date | None = None) -> bool:
        """Running, started, and not past its end."""
        today = today or datetime.now(UTC).date()
        return (
            self.status == "running"
            and self.start <= today
            and (self.end is None or today <= self.end)
        )

    def served(self) -> ServedExperiment:
        """The definition a client evaluates (GrowthBook's experiment fields)."""
        return ServedExperiment(
            key=self.key,
            variations=self.variant_keys,
            weights=self.weights,
            coverage=self.coverage,
            seed=self.seed,
            condition=self.targeting.condition(),
        )


def _schema(directory: Path) -> dict[str, Any]:
    path = directory / SCHEMA_FILE
    try:
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExperimentError(f"{path}: the schema file is missing") from None
    return loaded


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(top level)"


def _parse(document: dict[str, Any], path: Path) -> Experiment:
    targeting = document.get("targeting", {})
    version = targeting.get("client_version", {})
    metrics = document["metrics"]
    end = document.get("end")
    return Experiment(
        key=document["key"],
        name=document.get("name", document["key"]),
        hypothesis=document["hypothesis"],
        owner=document["owner"],
        status=document["status"],
        seed=document.get("seed", document["key"]),
        coverage=float(document.get("coverage", 1.0)),
        variants=tuple(
            Variant(v["key"], float(v["weight"]), v.get("description", ""))
            for v in document["variants"]
        ),
        start=date.fromisoformat(document["start"]),
        end=date.fromisoformat(end) if end else None,
        targeting=Targeting(
            client_version_min=version.get("min"),
            client_version_below=version.get("below"),
            host_app=tuple(targeting.get("host_app", ())),
            plan=tuple(targeting.get("plan", ())),
            language=tuple(targeting.get("language", ())),
            country=tuple(targeting.get("country", ())),
        ),
        primary_metric=metrics["primary"],
        secondary_metrics=tuple(metrics.get("secondary", ())),
        guardrail_metrics=tuple(metrics.get("guardrails", ())),
        minimum_detectable_effect=float(document["minimum_detectable_effect"]),
        alpha=float(document.get("alpha", DEFAULT_ALPHA)),
        power=float(document.get("power", DEFAULT_POWER)),
        sequential=bool(document.get("sequential", True)),
        sequential_method=Method(document.get("sequential_method", DEFAULT_SEQUENTIAL_METHOD)),
        planned_users=document.get("planned_users"),
        path=path,
    )


def _rules(experiment: Experiment, where: str) -> Iterable[str]:
    if experiment.path is not None and experiment.path.stem != experiment.key:
        yield f"{where}: key: must equal the file name without .yaml"
    if experiment.variants[0].key != CONTROL:
        yield f"{where}: variants/0/key: the first variant must be '{CONTROL}'"
    keys = experiment.variant_keys
    if len(set(keys)) != len(keys):
        yield f"{where}: variants: variant keys must be unique"
    if abs(sum(experiment.weights) - 1.0) > 1e-9:
        yield f"{where}: variants: the weights must add up to 1"
    if experiment.end is not None and experiment.end <= experiment.start:
        yield f"{where}: end: must be after start"
    if (
        experiment.method is Method.ALPHA_SPENDING
        and experiment.end is None
        and experiment.planned_users is None
    ):
        yield (
            f"{where}: planned_users: alpha spending needs planned_users or an end date"
            " (the information fraction of each daily look)"
        )
    roles = [
        experiment.primary_metric,
        *experiment.secondary_metrics,
        *experiment.guardrail_metrics,
    ]
    if len(set(roles)) != len(roles):
        yield f"{where}: metrics: a metric may have one role only"
    version = experiment.targeting
    if (
        version.client_version_min
        and version.client_version_below
        and sdk_experiments.padded_version(version.client_version_min)
        >= sdk_experiments.padded_version(version.client_version_below)
    ):
        yield f"{where}: targeting/client_version: min must be below 'below'"


def check(directory: Path | None = None) -> tuple[list[Experiment], list[str]]:
    """Every definition of ``directory`` and every problem found (empty when all pass)."""
    directory = directory or default_directory()
    validator = jsonschema.Draft202012Validator(
        _schema(directory), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    experiments: list[Experiment] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        where = path.name
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            problems.append(f"{where}:{line} not valid YAML")
            continue
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            problems.extend(f"{where}: {_where(e)}: {e.validator} rule broken" for e in errors)
            continue
        experiment = _parse(document, path)
        problems.extend(_rules(experiment, where))
        if experiment.key in seen:
            problems.append(f"{where}: key: also used by {seen[experiment.key].name}")
        seen[experiment.key] = path
        experiments.append(experiment)
    return experiments, problems


def load(directory: Path | None = None) -> list[Experiment]:
    """Every definition, or :class:`ExperimentError` listing every problem."""
    experiments, problems = check(directory)
    if problems:
        raise ExperimentError("invalid experiment definitions:\n  " + "\n  ".join(problems))
    return experiments


def find(key: str, directory: Path | None = None) -> Experiment:
    for experiment in load(directory):
        if experiment.key == key:
            return experiment
    raise ExperimentError(
        f"experiment: no definition with this key under {directory or default_directory()}"
    )


def export_document(experiments: Iterable[Experiment]) -> dict[str, Any]:
    """Every definition in the file the gateway serves from (``experiments export``,
    ``caret-otel up``): the gateway picks the active ones per request."""
    return {
        "experiments": [
            {**e.served().growthbook_fields(), "status": e.status,
             "start": e.start.isoformat(), "end": e.end.isoformat() if e.end else None}
            for e in experiments
        ]
    }  # fmt: skip


def served_payload(experiments: Iterable[Experiment], today: date | None = None) -> dict[str, Any]:
    """The answer of ``GET /telemetry/experiments``: the active definitions."""
    return {
        "hashVersion": sdk_experiments.HASH_VERSION,
        "experiments": [e.served().growthbook_fields() for e in experiments if e.is_active(today)],
    }
