"""Model: the encoders, ASIF's k and p, the usable pairs and the model version, and the health of
the database, migrations and broker behind them; and, where a labelled folder is configured
(`EVAL_FOLDER`), a zero-shot accuracy check of the live model on it."""

import gate
import runtime
import streamlit as st

from asifdb.broker import broker_url
from asifdb.services import evaluation, status
from asifdb.services.classify import Options

# What the page needs (the API's permission name; None: any signed-in key).
PERMISSION = None


def render() -> None:
    st.title("Model")
    with runtime.reported():
        _status()
    with runtime.reported():
        _accuracy_check()


def _status() -> None:
    gate.allow(None)
    platform = runtime.platform()
    settings = platform.settings
    report = status.platform_status(
        engine=platform.engine,
        broker_url=broker_url(redis_url=settings.redis_url, database_url=platform.url),
    )
    model = report.model
    version, usable, k, p = st.columns(4)
    version.metric("Model version", (model and model.version) or "—")
    usable.metric("Usable pairs", model.usable_pairs if model else 0)
    default = platform.model().ref  # the default model's k and p: a switch may set them
    k.metric("k (default)", default.k)
    p.metric("p (default)", default.p)
    st.subheader("Encoders")
    st.dataframe(
        [
            {
                "modality": "image",
                "configured": settings.image_encoder,
                "the pairs' (model)": model and model.image_encoder,
            },
            {
                "modality": "text",
                "configured": settings.text_encoder,
                "the pairs' (model)": model and model.text_encoder,
            },
        ],
        hide_index=True,
    )
    st.subheader("Platform")
    for part in ("database", "migrations", "broker"):
        state = getattr(report, part)
        if state is not None:
            st.markdown(f"{':green[ok]' if state.ok else ':red[not ok]'} — **{part}**")
            st.json(state.model_dump(mode="json", exclude_unset=True), expanded=not state.ok)


def _accuracy_check() -> None:
    settings = runtime.platform().settings
    st.subheader("Accuracy check")
    if settings.eval_folder is None:
        st.info(
            "No labelled folder configured: set `EVAL_FOLDER` (one sub-folder of images a "
            "class), and optionally `EVAL_CLASSNAMES`, `EVAL_TEMPLATES` and "
            "`EVAL_LIMIT_PER_CLASS`, to check the live model's zero-shot accuracy here. "
            "`asifdb eval` does the same from the command line."
        )
    else:
        st.caption(
            f"`{settings.eval_folder}`, {settings.eval_limit_per_class} images a class, "
            f"templates `{settings.eval_templates}`, the default model's k and p; "
            "nothing is recorded."
        )
        if st.button("Run accuracy check"):
            # Any signed-in key, as before: nothing is recorded and the folder is the operator's.
            gate.allow(None)
            platform = runtime.platform()
            handle = platform.model()
            progress = st.progress(0.0, text="Classifying…")
            result = evaluation.evaluate(
                sessions=platform.sessions,
                live=handle.live,
                encoders=handle.encoders,
                folder=settings.eval_folder,
                roots=settings.source_roots,
                classnames=settings.eval_classnames,
                templates=evaluation.read_templates(
                    settings.eval_templates, roots=settings.source_roots
                ),
                options=Options.of(settings, model=handle.ref),
                limit_per_class=settings.eval_limit_per_class,
                on_batch=lambda done, total: progress.progress(
                    done / total, text=f"{done} of {total} images"
                ),
            )
            progress.empty()
            top1, top5, chance, speed = st.columns(4)
            top1.metric("Top-1 accuracy", f"{result.top1:.1%}")
            top5.metric("Top-5 accuracy", f"{result.top5:.1%}")
            chance.metric("Chance", f"{result.chance:.1%}")
            speed.metric("Images / s", f"{result.images / result.seconds:.1f}")
            st.caption(
                f"{result.images} images, {len(result.classes)} classes, model version "
                f"{result.model_version} ({result.usable_pairs} usable pairs), "
                f"{result.method} top-k, {result.seconds:.1f} s"
            )
            st.dataframe(
                [
                    {"class": name, "top-1 accuracy": accuracy}
                    for name, accuracy in result.per_class.items()
                ],
                hide_index=True,
            )


if __name__ == "__main__":  # run by Streamlit as a page of ui/app.py
    gate.open_page(render, PERMISSION)
