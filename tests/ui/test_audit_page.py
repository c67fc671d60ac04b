"""Audit: the prediction log and its filters, one prediction's evidence, and pair usage."""

from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import Ui, labelled
from tests.ui.seeding import CIFAR, SHIP_LICENCE


def _log(at: AppTest) -> list[dict]:
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at.dataframe[0].value.to_dict("records")


def test_log_filters_drill_in_and_pair_usage(ui: Ui, ship_image: Callable[[int], Path]) -> None:
    classify = ui.app("app", "views/classify.py")
    image = ship_image(0)
    classify.file_uploader[0].set_value((image.name, image.read_bytes(), "image/png"))
    classify.text_area(key="classify.labels").set_value(", ".join(CIFAR))
    labelled(classify.button, "Classify").click().run()
    evidence_pairs = int(classify.caption[0].value.split(" pairs carried it")[0].split()[-1])

    at = ui.app("auditor", "views/audit.py")
    [logged] = _log(at)
    assert (logged["predicted_label"], logged["client"], logged["channel"]) == (
        "ship",
        "app-key",
        "ui",
    )
    labelled(at.text_input, "Predicted label").set_value("frog").run()
    assert _log(at) == []
    labelled(at.text_input, "Predicted label").set_value("ship").run()
    labelled(at.selectbox, "Influenced by licence").set_value(SHIP_LICENCE).run()
    assert [row["id"] for row in _log(at)] == [logged["id"]]
    labelled(at.text_input, "Client").set_value("someone-else").run()
    assert _log(at) == []
    labelled(at.text_input, "Client").set_value("").run()

    evidence = at.dataframe[2].value
    assert len(evidence) == evidence_pairs
    assert set(evidence["license_name"]) == {SHIP_LICENCE}
    assert evidence["image"].str.startswith("data:image/png;base64,").all()

    usage = {m.label: m.value for m in at.metric}
    assert usage["Usable pairs"] == "120"
    assert usage["Carried a prediction"] == str(evidence_pairs)
    assert usage["Never used"] == str(120 - evidence_pairs)
