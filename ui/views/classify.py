"""Classify & explain: an image against labels, every class's score, the pairs that carried the
prediction, and from any of them: open it, revoke its licence or delete it, then re-run."""

from dataclasses import dataclass

import altair as alt
import gate
import pandas as pd
import panels
import runtime
import streamlit as st

from asifdb.blobs import sha256_of_uri
from asifdb.errors import InvalidInput
from asifdb.prompts import TEMPLATE_SETS
from asifdb.schemas.collection import Neighbour
from asifdb.schemas.predictions import Classification
from asifdb.services import classify, collection, labelsets, licences, pairs
from asifdb.services.labelsets import Candidates

# What the page needs (the API's permission name; None: any signed-in key).
PERMISSION = "classify"

_REQUEST, _RESULT, _BEFORE = "classify.request", "classify.result", "classify.before"
_DONE = "classify.done"
_UPLOAD, _STORED = "Upload", "A stored pair's image"
_TYPED, _LABEL_SET = "Type labels", "A label set"


@dataclass(frozen=True)
class _Request:
    """What to classify again after an action: the same image, candidates and settings."""

    image: tuple[str, bytes]
    candidates: Candidates
    options: classify.Options
    model: str | None = None  # a named model; None: the default


@dataclass(frozen=True)
class _Shown:
    """A classification and every class's neighbouring pairs, drawn together."""

    result: Classification
    neighbours: list[Neighbour]


def _run(request: _Request) -> _Shown:
    """Classify (recorded, channel "ui"), with every class's neighbouring pairs for the plot."""
    who = gate.allow("classify")
    platform = runtime.platform()
    handle = platform.model(request.model)
    with platform.sessions.begin() as session:
        [result] = classify.classify(
            session,
            live=handle.live,
            encoders=handle.encoders,
            images=[request.image],
            candidates=request.candidates,
            options=request.options,
            client=who.name,
            channel="ui",
            blobs=platform.blobs,
        )
        # The plot reads the default model's embeddings: drawn for it alone.
        neighbours = (
            collection.neighbours(
                session,
                live=handle.live,
                encoders=handle.encoders,
                image=request.image,
                candidates=request.candidates,
                options=request.options,
            )
            if handle.ref.is_default
            else []
        )
    return _Shown(result, neighbours)


def _image_input(source: str) -> tuple[str, bytes] | int | None:
    """Inside the form: an upload's name and bytes, or a stored pair's id (read on submit)."""
    if source == _UPLOAD:
        upload = st.file_uploader("Image to classify", type=["jpg", "jpeg", "png", "webp", "bmp"])
        return (upload.name, upload.getvalue()) if upload else None
    pair_id = st.number_input("Pair id", min_value=1, step=1, value=None)
    return None if pair_id is None else int(pair_id)


def _stored_image(pair_id: int) -> tuple[str, bytes]:
    """A stored pair's image: the API's pairs:read, as opening the pair there needs."""
    gate.allow("pairs:read")
    with runtime.platform().sessions() as session:
        pair = pairs.get(session, pair_id=pair_id)
    if not pair.blob_uri:
        raise InvalidInput(f"pair {pair_id} was deleted: its image is gone")
    return f"pair-{pair_id}", runtime.platform().blobs.get(sha256_of_uri(pair.blob_uri))


def _label_set_names() -> list[str]:
    gate.allow("labelsets:read")
    with runtime.platform().sessions() as session:
        return [s.name for s in labelsets.list_all(session)]


def _labels_input(names: list[str] | None) -> str | tuple[list[str], str] | None:
    """Inside the form: a label set's name, or the typed labels and their template set."""
    if names is not None:
        return st.selectbox("Label set", names, index=None, placeholder="No label set yet")
    typed = st.text_area("Labels, one per line or separated by commas", key="classify.labels")
    templates = st.selectbox("Caption templates", list(TEMPLATE_SETS), key="classify.templates")
    labels = [label for line in typed.splitlines() for label in line.split(",") if label.strip()]
    return (labels, templates) if labels else None


def _candidates(chosen: str | tuple[list[str], str]) -> Candidates:
    if isinstance(chosen, tuple):
        return labelsets.check(*chosen)
    gate.allow("labelsets:read")
    with runtime.platform().sessions() as session:
        return labelsets.get(session, name=chosen)


def _options() -> tuple[classify.Options, str | None]:
    """The ASIF settings and the model (None: the default); k and p start at the model's."""
    settings = runtime.platform().settings
    with st.expander("ASIF settings"):
        chosen = panels.model_choice("classify.model")
        k = st.number_input("k (anchors kept per representation)", *classify.K_RANGE, chosen.k)
        p = st.number_input("p (exponent)", *classify.P_RANGE, float(chosen.p), step=0.5)
        aggregation = st.selectbox("Templates combine by", ["max", "mean"])
    options = classify.Options.of(settings, k=int(k), p=float(p), aggregation=aggregation)
    return options, None if chosen.default else chosen.name


def _request_form() -> None:
    """Image, labels and settings in one form: nothing reruns until Classify is pressed."""
    source = st.radio("Image", [_UPLOAD, _STORED], horizontal=True, key="classify.source")
    from_set = st.radio("Labels", [_TYPED, _LABEL_SET], horizontal=True) == _LABEL_SET
    names = None
    if from_set:
        with runtime.reported():
            names = _label_set_names()
        if names is None:
            return
    with st.form("classify.form"):
        image = _image_input(source)
        labels = _labels_input(names)
        options, model = _options()
        submitted = st.form_submit_button(
            "Classify", type="primary", disabled=not gate.may("classify")
        )
    if not submitted:
        return
    if image is None or labels is None:
        st.error("Choose an image and the labels to classify it among.")
        return
    gate.allow("classify")
    if isinstance(image, int):
        image = _stored_image(image)
    request = _Request(image, _candidates(labels), options, model)
    result = _run(request)
    st.session_state[_REQUEST] = request
    st.session_state[_BEFORE] = None
    st.session_state[_RESULT] = result


def _show_change(before: Classification, after: Classification) -> None:
    text = (
        f"before: **{before.label}** ({before.score:.4f}, model version "
        f"{before.model_version}, {before.usable_pairs} usable pairs) → now: "
        f"**{after.label}** ({after.score:.4f}, version {after.model_version}, "
        f"{after.usable_pairs} usable pairs)"
    )
    if before.label != after.label:
        st.warning("Prediction changed — " + text)
    else:
        st.info("Prediction unchanged — " + text)


def _scores(result: Classification) -> None:
    frame = pd.DataFrame(result.scores.items(), columns=["class", "score"])
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("score:Q"),
            y=alt.Y("class:N", sort="-x"),
            color=alt.condition(
                alt.datum["class"] == result.label, alt.value("#d62728"), alt.value("#8c8c8c")
            ),
            tooltip=["class", alt.Tooltip("score:Q", format=".5f")],
        )
    )
    st.altair_chart(chart, width="stretch")


def _scatter(shown: _Shown) -> None:
    """The paper's interpretability plot: pairs near the image and near each class's caption."""
    frame = pd.DataFrame(
        [n.model_dump() for n in shown.neighbours], columns=list(Neighbour.model_fields)
    )
    if frame.empty:
        st.caption("No pair is near both the image and a candidate caption.")
        return
    chart = (
        alt.Chart(frame)
        .mark_circle(opacity=0.7)
        .encode(
            x=alt.X("image_similarity:Q", title="image similarity")
            .scale(zero=False)
            .axis(format=".2f"),
            y=alt.Y("caption_similarity:Q", title="caption similarity")
            .scale(zero=False)
            .axis(format=".2f"),
            size=alt.Size("contribution:Q", title="contribution"),
            # One colour per candidate class, the same in every re-run of this request.
            color=alt.Color("label:N", title="class").scale(domain=list(shown.result.scores)),
            tooltip=["pair_id", "label", "caption", "license", "contribution"],
        )
    )
    st.altair_chart(chart, width="stretch")


def _evidence_actions(result: Classification, request: _Request) -> None:
    evidence = {e.pair_id: e for e in result.evidence}
    if not evidence:
        return
    chosen = st.selectbox(
        "Open an evidence pair",
        list(evidence),
        format_func=lambda i: f"pair {i} — {evidence[i].caption} ({evidence[i].license})",
    )
    if gate.may("pairs:read"):
        with runtime.reported():
            panels.pair_detail(chosen)
    else:
        st.caption("A pair's image and provenance open for keys that may read pairs.")
    licence = evidence[chosen].license
    revoke_col, delete_col = st.columns(2)
    with revoke_col, st.form("classify.revoke"):
        reason = st.text_input("Reason for revoking", key="classify.revoke_reason")
        revoke = st.form_submit_button(
            f"Revoke licence {licence}",
            disabled=not gate.may("licenses:write"),
            help="Its pairs leave the model at once (stewards and admins).",
        )
    with delete_col, st.form("classify.delete"):
        why = st.text_input("Reason for deleting", key="classify.delete_reason")
        delete = st.form_submit_button(
            f"Delete pair {chosen}",
            disabled=not gate.may("pairs:delete"),
            help="The pair, its embeddings and its image go (stewards and admins).",
        )
    if revoke:
        who = gate.allow("licenses:write")
        with runtime.platform().sessions.begin() as session:
            done = licences.revoke(session, licence=licence, reason=reason, actor=who.name)
        _rerun_after_action(
            request, f"Revoked {done.license}: {done.pairs_removed} pairs left the model."
        )
    if delete:
        who = gate.allow("pairs:delete")
        platform = runtime.platform()
        with platform.sessions.begin() as session:
            blob = pairs.delete(session, pair_id=chosen, actor=who.name, reason=why or None)
        pairs.remove_blob(platform.sessions, platform.blobs, blob)
        _rerun_after_action(request, f"Deleted pair {chosen}: it left the model.")


def _rerun(request: _Request) -> None:
    """Classify the same request again; the last result becomes the one to compare with."""
    after = _run(request)
    st.session_state[_BEFORE] = st.session_state[_RESULT]
    st.session_state[_RESULT] = after


def _rerun_after_action(request: _Request, done: str) -> None:
    """Re-run at once after an action, so its effect shows, and redraw the page."""
    st.session_state[_DONE] = done
    _rerun(request)
    st.rerun()


def _show(shown: _Shown, request: _Request) -> None:
    result = shown.result
    if done := st.session_state.pop(_DONE, None):
        st.success(done)
    if (before := st.session_state.get(_BEFORE)) is not None:
        _show_change(before.result, result)
    label, score, version, usable = st.columns(4)
    label.metric("Prediction", result.label)
    score.metric("Score", f"{result.score:.4f}")
    version.metric("Model version", result.model_version)
    usable.metric("Usable pairs", result.usable_pairs)
    st.caption(
        f"Prediction {result.prediction_id} · k = {result.k}, p = {result.p}, "
        f"{result.aggregation} over templates · {result.evidence_pairs} pairs carried it"
    )
    scores, scatter = st.columns(2)
    with scores:
        st.subheader("Every class's score")
        _scores(result)
    with scatter:
        st.subheader("Neighbouring pairs")
        _scatter(shown)
    st.subheader(f"The pairs that carried “{result.label}”")
    panels.pairs_table(
        result.evidence,
        {
            "caption": "caption",
            "license": "licence",
            "image_similarity": st.column_config.NumberColumn("image sim.", format="%.3f"),
            "caption_similarity": st.column_config.NumberColumn("caption sim.", format="%.3f"),
            "contribution": st.column_config.NumberColumn("contribution", format="%.5f"),
        },
    )
    _evidence_actions(result, request)


def render() -> None:
    st.title("Classify & explain")
    with runtime.reported():
        _request_form()
    with runtime.reported():
        if (request := st.session_state.get(_REQUEST)) is not None:
            st.divider()
            picture, rerun = st.columns([1, 3])
            picture.image(request.image[1], caption=request.image[0], width=224)
            if rerun.button("Re-run this prediction", icon=":material/refresh:"):
                _rerun(request)
            _show(st.session_state[_RESULT], request)


if __name__ == "__main__":  # run by Streamlit as a page of ui/app.py
    gate.open_page(render, PERMISSION)
