"""The Curate page: score and list mismatched captions, reject with a reason; roles."""

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import Ui, labelled


def _mismatches(at: AppTest) -> list[dict]:
    # The first tab's table: the mismatch list.
    return at.dataframe[0].value.to_dict("records")


def test_score_list_reject_and_the_pair_leaves_the_model(ui: Ui) -> None:
    at = ui.app("steward", "views/curate.py")
    labelled(at.button, "Score new pairs").click().run()
    assert not at.exception, at.exception
    assert "Scored 120 pairs in the encoders' spaces." in at.success[0].value
    rows = _mismatches(at)
    assert len(rows) == 20, [len(d.value) for d in at.dataframe]
    fits = [r["fit"] for r in rows]
    assert fits == sorted(fits)
    worst = rows[0]["pair_id"]

    at.multiselect(key="curate.mismatches.chosen").set_value([worst])
    at.button(key="curate.mismatches.reject").click().run()
    assert "a reason is needed" in at.error[0].value
    at.text_input(key="curate.mismatches.reason").set_value("caption does not fit")
    at.button(key="curate.mismatches.reject").click().run()
    assert not at.exception, at.exception
    assert "Rejected 1 pairs: 1 left the model" in at.success[0].value
    assert worst not in {r["pair_id"] for r in _mismatches(at)}


def test_an_auditor_reads_the_lists_but_may_not_act(ui: Ui) -> None:
    at = ui.app("auditor", "views/curate.py")
    assert not at.exception, at.exception
    assert labelled(at.button, "Score new pairs").disabled
    assert at.button(key="curate.mismatches.reject").disabled
    assert at.button(key="curate.mismatches.mark").disabled
