"""No usage data leaves the platform: third-party telemetry is switched off in every process,
before the libraries that send it load. `asifdb/__init__.py` calls `disable()`, so nothing that
imports the platform can skip it."""

import os
import sys

# What each library reads to stay quiet: Hugging Face's hub, and the generic opt-out.
_QUIET_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
}


def disable() -> None:
    """Turn third-party telemetry off for this process and the children it starts."""
    # OpenVINO's model converter reports usage to Google Analytics unless opted out, writes a
    # client id under the home folder, and offline its sender blocks the process's exit.
    # Every importer of it falls back to OpenVINO's own no-op stub when it cannot be imported.
    if sys.modules.get("openvino_telemetry") is not None:
        raise RuntimeError(
            "openvino_telemetry was imported before asifdb: import asifdb first so that "
            "OpenVINO's telemetry stays off"
        )
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    for name, value in _QUIET_ENV.items():
        os.environ[name] = value
