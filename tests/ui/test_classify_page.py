"""Classify & explain: a prediction with its evidence, and revoking or deleting from it."""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import text
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from asifdb.services import labelsets
from tests.ui.conftest import Ui, labelled
from tests.ui.seeding import CIFAR, SHIP_LICENCE


def _classify(at: AppTest, image: Path) -> AppTest:
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/png"))
    # One form: the typed labels and the Classify button go together, no Ctrl+Enter first.
    at.text_area(key="classify.labels").set_value("\n".join(CIFAR))
    labelled(at.button, "Classify").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _evidence(at: AppTest) -> pd.DataFrame:
    [table] = at.dataframe
    return table.value


def _scatter(at: AppTest) -> pd.DataFrame:
    """The data of the chart of image similarity against caption similarity."""
    [chart] = [c for c in at.get("vega_lite_chart") if "caption similarity" in c.proto.spec]
    [data] = chart.proto.datasets
    return dataframe_util.convert_arrow_bytes_to_pandas_df(data.data.data)


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_classify_shows_scores_evidence_and_neighbours(
    ui: Ui, ship_image: Callable[[int], Path]
) -> None:
    at = _classify(ui.app("app", "views/classify.py"), ship_image(0))
    assert _metrics(at)["Prediction"] == "ship"
    assert _metrics(at)["Usable pairs"] == "120"
    evidence = _evidence(at)
    assert 1 <= len(evidence) <= 10
    assert set(evidence.columns) >= {"caption", "contribution", "image_similarity"}
    assert (evidence["license"] == SHIP_LICENCE).all()
    assert list(evidence["contribution"]) == sorted(evidence["contribution"], reverse=True)
    # The paper's plot: neighbours of several classes, the predicted one's are the evidence.
    points = _scatter(at)
    assert {"ship", "airplane"} <= set(points["label"])
    ships = points[points["label"] == "ship"].sort_values("contribution", ascending=False)
    assert list(ships["pair_id"][: len(evidence)]) == list(evidence["pair_id"])
    with ui.platform.sessions() as session:
        recorded = session.execute(
            text("SELECT predicted_label, channel, client FROM predictions")
        ).one()
    assert tuple(recorded) == ("ship", "ui", "app-key")
    # An app key may not revoke or delete: both actions are disabled.
    revoke = labelled(at.button, f"Revoke licence {SHIP_LICENCE}")
    delete = next(b for b in at.button if b.label.startswith("Delete pair"))
    assert revoke.disabled and delete.disabled


def test_revoking_the_evidence_licence_changes_the_next_prediction(
    ui: Ui, ship_image: Callable[[int], Path]
) -> None:
    at = _classify(ui.app("steward", "views/classify.py"), ship_image(0))
    assert _metrics(at)["Prediction"] == "ship"
    revoke = labelled(at.button, f"Revoke licence {SHIP_LICENCE}")
    revoke.click().run()
    assert "a revocation needs a reason" in at.error[0].value
    at.text_input(key="classify.revoke_reason").set_value("the ship photos' licence expired")
    labelled(at.button, f"Revoke licence {SHIP_LICENCE}").click().run()
    assert not at.exception, at.exception
    assert f"Revoked {SHIP_LICENCE}: 12 pairs left the model." in at.success[0].value
    assert "Prediction changed" in at.warning[0].value
    assert _metrics(at)["Prediction"] != "ship"
    assert _metrics(at)["Usable pairs"] == "108"
    evidence = _evidence(at)
    assert SHIP_LICENCE not in set(evidence["license"])


def test_deleting_an_evidence_pair_takes_it_out_of_the_next_prediction(
    ui: Ui, ship_image: Callable[[int], Path]
) -> None:
    at = _classify(ui.app("admin", "views/classify.py"), ship_image(0))
    top = int(_evidence(at)["pair_id"][0])
    labelled(at.button, f"Delete pair {top}").click().run()
    assert not at.exception, at.exception
    assert f"Deleted pair {top}" in at.success[0].value
    assert _metrics(at)["Usable pairs"] == "119"
    after = _evidence(at)
    assert top not in set(after["pair_id"])
    with ui.platform.sessions() as session:
        deleted = session.execute(
            text("SELECT deleted_by, blob_uri FROM pairs WHERE id = :p"), {"p": top}
        ).one()
    assert tuple(deleted) == ("admin-key", None)


def test_a_stored_pairs_image_can_be_classified(ui: Ui) -> None:
    at = ui.app("annotator", "views/classify.py")
    at.radio[0].set_value("A stored pair's image").run()
    # The form's fields count once Classify is pressed (a run before would drop them).
    at.number_input[0].set_value(1)
    at.text_area(key="classify.labels").set_value("airplane, ship, frog")
    labelled(at.button, "Classify").click().run()
    assert not at.exception and not at.error
    assert _metrics(at)["Prediction"] in {"airplane", "ship", "frog"}


def test_a_label_set_can_be_chosen(ui: Ui, ship_image: Callable[[int], Path]) -> None:
    with ui.platform.sessions.begin() as session:
        labelsets.create(
            session, name="vehicles", classes=["ship", "truck"], templates="cifar", actor="test"
        )
    at = ui.app("app", "views/classify.py")
    labelled(at.radio, "Labels").set_value("A label set").run()
    image = ship_image(0)
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/png"))
    labelled(at.selectbox, "Label set").set_value("vehicles")
    labelled(at.button, "Classify").click().run()
    assert not at.exception and not at.error
    with ui.platform.sessions() as session:
        recorded = session.execute(text("SELECT candidates FROM predictions")).scalar_one()
    assert recorded["label_set"] == "vehicles" and len(recorded["templates"]) == 18
    assert set(_scatter(at)["label"]) <= {"ship", "truck"}
