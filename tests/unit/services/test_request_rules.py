"""The request rules every adapter shares, kept once in services: k and p from the settings
where a request gives none, checked against one pair of bounds; labels or a stored label set,
never both. The API, CLI and UI call these, so a rule tested here holds for all three."""

import pytest

from asifdb.errors import InvalidInput
from asifdb.services import classify, labelsets
from asifdb.settings import Settings


def test_options_take_the_settings_defaults_and_refuse_what_the_bounds_exclude() -> None:
    settings = Settings(k=123, p=4.0)
    assert (classify.Options.of(settings).k, classify.Options.of(settings).p) == (123, 4.0)
    given = classify.Options.of(settings, k=7, p=2.5, aggregation="mean", method="exact")
    assert (given.k, given.p, given.aggregation, given.method) == (7, 2.5, "mean", "exact")
    low_k, high_k = classify.K_RANGE
    low_p, high_p = classify.P_RANGE
    assert classify.Options.of(settings, k=low_k, p=low_p).k == low_k
    assert classify.Options.of(settings, k=high_k, p=high_p).p == high_p
    for bad in ({"k": low_k - 1}, {"k": high_k + 1}, {"p": 0.5}, {"p": high_p + 1}):
        with pytest.raises(InvalidInput):
            classify.Options.of(settings, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="aggregation"):
        classify.Options.of(settings, aggregation="median")


def test_labels_and_a_label_set_together_are_refused_before_any_lookup() -> None:
    # No session is touched: the rule is decided on the request alone.
    with pytest.raises(InvalidInput, match="not both"):
        labelsets.candidates(None, labels=["cat", "dog"], label_set="animals")  # type: ignore[arg-type]
    chosen = labelsets.candidates(None, labels=[" cat", "dog "], templates="default")  # type: ignore[arg-type]
    assert chosen.classes == ("cat", "dog") and chosen.templates
