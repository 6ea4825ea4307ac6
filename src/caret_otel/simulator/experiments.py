"""The simulator runs an A/B experiment with a known true effect (docs/experiments.md).

Every simulated user is assigned with the production assignment
(:func:`caret_otel.sdk.experiments.assign`, GrowthBook's hash) from the experiment's
definition under ``experiments/``. Before each task the client "shows" the variant and
sends an ``experiment.exposure`` event; the variant then changes the task's outcome by
the known true effect: for a lift above 0 a task that would not have succeeded succeeds
with the probability that lifts the success rate by ``true_lift`` (relative); below 0 a
task that would have succeeded is abandoned with probability ``-true_lift``. With a lift
of 0 the experiment is an A/A test. ``caret-otel simulate --experiment KEY --true-lift
VARIANT=LIFT`` chooses the experiment and the effect.

Nothing here draws from the user's behaviour generator: exposure ids and the outcome
flips come from generators seeded by the task id, so a scenario without an experiment
is the same as before, event for event.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from caret_otel.core.errors import InputError
from caret_otel.experiments import definitions
from caret_otel.sdk.experiments import ServedExperiment, UserContext, assign
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.simulator import catalog
from caret_otel.simulator.fields import client_info_key, property_key
from caret_otel.simulator.population import User
from caret_otel.simulator.traffic import ClientEvent

DEMO_EXPERIMENT: Final = "demo-plan-hint"
"""The definition ``caret-otel demo`` simulates and analyses."""
TRUE_LIFTS: Final[Mapping[str, Mapping[str, float]]] = {DEMO_EXPERIMENT: {"hint": 0.08}}
"""Known true relative lift of the task success rate, per experiment and variant."""
SUCCESS: Final = "success"
LOST: Final = "abandoned"
"""What a success becomes under a negative lift."""
_NAMESPACE: Final = uuid.UUID("6f1d8a52-4c1e-4b8e-9a57-3c2e51f0a8d1")


@dataclass(frozen=True)
class SimulatedExperiment:
    served: ServedExperiment
    true_lift: Mapping[str, float] = field(default_factory=dict)
    base_success: float = dict(catalog.TASK_OUTCOMES)[SUCCESS]

    def variant(self, user: User, client_version: str, plan: str) -> str | None:
        context = UserContext(
            user_id=user.user_id_hash, client_version=client_version, host_app=user.platform,
            plan=plan, language=user.language, country=user.country.code,
        )  # fmt: skip
        return assign(self.served, context)

    def exposure(
        self, user: User, variant: str, at: datetime, session_id: str, version: str, task_id: str
    ) -> ClientEvent:
        """The client's exposure event before a task (its id derives from the task id)."""
        spec = events.CARET_EXPERIMENT_EXPOSURE
        assert spec.client_event is not None
        properties: dict[str, object] = {
            property_key(attrs.CARET_EVENT_ID): str(uuid.uuid5(_NAMESPACE, f"{task_id}:{self.served.key}")),
            property_key(attrs.CARET_EXPERIMENT_KEY): self.served.key,
            property_key(attrs.CARET_EXPERIMENT_VARIANT): variant,
        }  # fmt: skip
        client_info = {
            client_info_key(attrs.CARET_CLIENT_VERSION): version,
            client_info_key(attrs.CARET_CLIENT_PLATFORM): user.platform,
            client_info_key(attrs.CARET_CLIENT_LANGUAGE): user.language,
        }
        return ClientEvent(
            at, spec.client_event, user.user_id_hash, session_id, properties, client_info
        )

    def outcome(self, variant: str | None, outcome: str, task_id: str) -> str:
        """``outcome`` after the variant's true effect on the success rate."""
        lift = self.true_lift.get(variant or "", 0.0)
        if lift == 0 or (outcome == SUCCESS) == (lift > 0):
            return outcome
        draw = random.Random(f"{task_id}:{self.served.key}").random()
        if lift < 0:
            return LOST if draw < -lift else outcome
        flip = self.base_success * lift / (1 - self.base_success)
        return SUCCESS if draw < flip else outcome


class SimulatedExperimentError(InputError):
    """A true effect the simulator cannot inject; the message names the variant."""


def simulated(
    key: str = DEMO_EXPERIMENT, true_lift: Mapping[str, float] | None = None
) -> SimulatedExperiment:
    """The experiment ``key`` of ``experiments/`` with a known true effect: ``true_lift``
    (relative lift of the task success rate per variant; variants left out: none), or the
    key's entry in :data:`TRUE_LIFTS` (none there: an A/A test)."""
    experiment = definitions.find(key)
    lifts = dict(TRUE_LIFTS.get(key, {}) if true_lift is None else true_lift)
    base = dict(catalog.TASK_OUTCOMES)[SUCCESS]
    for variant, lift in lifts.items():
        if variant not in experiment.variant_keys:
            raise SimulatedExperimentError(
                f"true_lift: the experiment {key} has no such variant (variants: "
                f"{', '.join(experiment.variant_keys)})"
            )
        if not -1 <= lift <= (1 - base) / base:
            raise SimulatedExperimentError(
                f"true_lift: the lift of variant {variant} must lie in [-1, "
                f"{(1 - base) / base:.3f}] (the success rate is {base:.0%})"
            )
    return SimulatedExperiment(experiment.served(), lifts, base)
