"""Licences: pair counts and status, create, revoke with a reason, restore, the impact report."""

from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import Ui, labelled
from tests.ui.seeding import CIFAR, OTHER_LICENCE, SHIP_LICENCE


def _licences(at: AppTest) -> dict[str, dict]:
    return {row["name"]: row for row in at.dataframe[0].value.to_dict("records")}


def test_list_revoke_with_a_reason_and_restore(ui: Ui) -> None:
    at = ui.app("steward", "views/licences.py")
    listed = _licences(at)
    assert listed[SHIP_LICENCE]["pairs"] == 12 and listed[SHIP_LICENCE]["usable_pairs"] == 12
    assert listed[OTHER_LICENCE]["usable_pairs"] == 108
    labelled(at.selectbox, "Licence").set_value(SHIP_LICENCE).run()
    labelled(at.button, f"Revoke {SHIP_LICENCE}").click().run()
    assert "a revocation needs a reason" in at.error[0].value
    labelled(at.text_input, "Reason (kept in the audit log)").set_value("contract ended")
    labelled(at.button, f"Revoke {SHIP_LICENCE}").click().run()
    assert not at.exception, at.exception
    assert f"Revoked {SHIP_LICENCE}: 12 pairs left the model" in at.success[0].value
    revoked = _licences(at)[SHIP_LICENCE]
    assert (revoked["status"], revoked["usable_pairs"], revoked["reason"]) == (
        "revoked",
        0,
        "contract ended",
    )
    labelled(at.button, f"Restore {SHIP_LICENCE}").click().run()
    assert f"Restored {SHIP_LICENCE}: 12 pairs are back" in at.success[0].value
    assert _licences(at)[SHIP_LICENCE]["usable_pairs"] == 12


def test_create_a_licence(ui: Ui) -> None:
    at = ui.app("admin", "views/licences.py")
    labelled(at.text_input, "Name").set_value("stock-2026")
    labelled(at.text_input, "Holder").set_value("Stock Photos Ltd")
    labelled(at.button, "Create").click().run()
    assert not at.exception and "Created licence stock-2026." in at.success[0].value
    assert _licences(at)["stock-2026"]["status"] == "active"


def test_an_app_key_sees_licences_but_may_not_revoke(ui: Ui) -> None:
    at = ui.app("app", "views/licences.py")
    assert set(_licences(at)) == {OTHER_LICENCE, SHIP_LICENCE}
    assert labelled(at.button, f"Revoke {OTHER_LICENCE}").disabled
    assert labelled(at.button, "Create").disabled
    assert labelled(at.button, "Impact report").disabled


def test_impact_report_reruns_the_predictions_the_licence_carried(
    ui: Ui, ship_image: Callable[[int], Path]
) -> None:
    at = ui.app("steward", "views/classify.py")
    image = ship_image(0)
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/png"))
    at.text_area(key="classify.labels").set_value(", ".join(CIFAR))
    labelled(at.button, "Classify").click().run()
    assert {m.label: m.value for m in at.metric}["Prediction"] == "ship"

    at.switch_page("views/licences.py").run()
    labelled(at.selectbox, "Licence").set_value(SHIP_LICENCE).run()
    labelled(at.button, "Impact report").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Predictions influenced"] == "1"
    assert metrics["Changed without it"] == "1 of 1"
    [sample] = at.dataframe[1].value.to_dict("records")
    assert (sample["label then"], sample["changed"]) == ("ship", True)
    assert sample["label now"] != "ship"
    # A dry run: the licence is still active and its pairs still usable.
    assert _licences(at)[SHIP_LICENCE]["usable_pairs"] == 12


def test_erase_a_revoked_licence_only_with_its_name_typed_then_the_report(ui: Ui) -> None:
    at = ui.app("steward", "views/licences.py")
    labelled(at.selectbox, "Licence").set_value(SHIP_LICENCE).run()
    assert not [b for b in at.button if b.label == "Erase"]  # active: revoke first
    labelled(at.text_input, "Reason (kept in the audit log)").set_value("consent withdrawn")
    labelled(at.button, f"Revoke {SHIP_LICENCE}").click().run()
    assert "removes for good 12 pairs" in at.warning[0].value
    labelled(at.text_input, "Reason (kept in the audit log)").set_value("erasure requested")
    labelled(at.text_input, f"Type {SHIP_LICENCE} to confirm").set_value(SHIP_LICENCE[:-1])
    labelled(at.button, "Erase").click().run()
    assert not at.exception, at.exception
    assert SHIP_LICENCE in at.error[0].value  # the name did not match: nothing erased
    assert _licences(at)[SHIP_LICENCE]["pairs"] == 12
    labelled(at.text_input, f"Type {SHIP_LICENCE} to confirm").set_value(SHIP_LICENCE)
    labelled(at.button, "Erase").click().run()
    assert not at.exception, at.exception
    assert f"Erased {SHIP_LICENCE}: 12 pairs" in at.success[0].value
    assert "every check passed" in at.success[0].value
    erased = _licences(at)[SHIP_LICENCE]
    assert (erased["status"], erased["pairs"]) == ("erased", 0)
    assert any("Every check passed." in s.value for s in at.success)
    assert not [b for b in at.button if b.label.startswith("Restore")]
    assert _licences(at)[OTHER_LICENCE]["usable_pairs"] == 108


def test_an_app_key_cannot_erase(ui: Ui) -> None:
    at = ui.app("steward", "views/licences.py")
    labelled(at.selectbox, "Licence").set_value(SHIP_LICENCE).run()
    labelled(at.text_input, "Reason (kept in the audit log)").set_value("paused")
    labelled(at.button, f"Revoke {SHIP_LICENCE}").click().run()
    app = ui.app("app", "views/licences.py")
    labelled(app.selectbox, "Licence").set_value(SHIP_LICENCE).run()
    assert not [b for b in app.button if b.label == "Erase"]
