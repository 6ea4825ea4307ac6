"""k-suppression of the anonymised trends: small cells merge into 'other' so that no
cell under k users is published or can be recovered by subtraction."""

from __future__ import annotations

from collections.abc import Callable

from caret_otel.exporters.postgres.trends import OTHER, Cell, suppress

K = 10


def cells_and_merge(
    users_per_value: dict[str, set[int]],
) -> tuple[list[Cell], Callable[[list[str]], Cell]]:
    """Cells with distinct-user counts, and the merge that counts distinct users across
    merged values (a user in two small cells counts once)."""
    cells = [Cell(v, len(u), len(u), None) for v, u in users_per_value.items()]

    def merge(values: list[str]) -> Cell:
        users = set().union(*(users_per_value[v] for v in values))
        return Cell(OTHER, len(users), sum(len(users_per_value[v]) for v in values), None)

    return cells, merge


def published(result: list[Cell]) -> dict[str, int]:
    return {c.value: c.users for c in result}


def test_cells_with_k_users_or_more_are_published_as_they_are() -> None:
    cells, merge = cells_and_merge({"KR": set(range(12)), "US": set(range(100, 110))})
    assert published(suppress(cells, K, merge)) == {"KR": 12, "US": 10}


def test_small_cells_are_merged_into_other() -> None:
    cells, merge = cells_and_merge(
        {"KR": set(range(30)), "JP": set(range(100, 106)), "DE": set(range(200, 205))}
    )
    assert published(suppress(cells, K, merge)) == {"KR": 30, OTHER: 11}


def test_other_below_k_takes_the_next_smallest_cell_so_nothing_small_is_recoverable() -> None:
    # JP alone (6) is under k: publishing KR, US and a total would reveal it. US (12,
    # the smallest published cell) joins 'other'.
    cells, merge = cells_and_merge(
        {"KR": set(range(40)), "US": set(range(100, 112)), "JP": set(range(200, 206))}
    )
    assert published(suppress(cells, K, merge)) == {"KR": 40, OTHER: 18}


def test_other_counts_distinct_users_across_the_merged_cells() -> None:
    # 6 + 6 users but 4 of them in both cells: 8 distinct, still under k.
    cells, merge = cells_and_merge(
        {"KR": set(range(20)), "JP": set(range(100, 106)), "TW": set(range(102, 108))}
    )
    assert published(suppress(cells, K, merge)) == {OTHER: 28}


def test_nothing_is_published_when_even_everything_together_is_under_k() -> None:
    cells, merge = cells_and_merge({"KR": set(range(5)), "JP": set(range(100, 104))})
    assert suppress(cells, K, merge) == []


def test_a_real_value_named_other_is_folded_into_the_other_cell() -> None:
    cells, merge = cells_and_merge({"KR": set(range(15)), OTHER: set(range(100, 120))})
    assert published(suppress(cells, K, merge)) == {"KR": 15, OTHER: 20}
