"""The UI process's platform (one per Streamlit server), and how every page shows an error: a
domain error as its message, anything else as a generic one, logged here, never a traceback."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from asifdb.context import Platform
from asifdb.errors import AsifdbError
from asifdb.settings import get_settings

log = logging.getLogger("asifdb.ui")

UNEXPECTED = "Something went wrong on the server; it is logged there. Try again, or ask an admin."


@st.cache_resource(show_spinner="Connecting to the database…")
def platform() -> Platform:
    """Shared by every browser session of this server: one pool, one live model, one encoder."""
    return Platform(get_settings())


@contextmanager
def reported() -> Iterator[None]:
    """Show a domain error as the message it is (it names the fix); log any other error and
    show only that something went wrong. Streamlit's reruns and stops pass through."""
    try:
        yield
    except AsifdbError as exc:
        st.error(str(exc))
    except Exception:
        log.exception("a UI page failed")
        st.error(UNEXPECTED, icon=":material/error:")
