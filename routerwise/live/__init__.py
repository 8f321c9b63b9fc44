"""Serving a plan for real: an OpenAI-compatible router in front of model servers.

``plan``: :class:`LivePlan` reads ``routerwise solve ... --json``; its router chooses a model per
prompt. ``app``: :func:`create_app`, the Starlette router app. ``server``:
:class:`RouterServer`, uvicorn in a background thread. ``fake_upstream``: a fast fake model
server for tests and the router benchmark. Needs the ``live`` extra (starlette, uvicorn,
aiohttp, httpx, prometheus-client): ``pip install -e ".[live]"``.
"""

from __future__ import annotations

from .plan import Decision, LivePlan, PlanRouter, prompt_digest

__all__ = ["Decision", "LivePlan", "PlanRouter", "prompt_digest", "require_live_extra"]

_LIVE_PACKAGES = ("starlette", "uvicorn", "aiohttp", "httpx", "prometheus_client")


def require_live_extra() -> None:
    """Raise MissingDependency naming the packages of the ``live`` extra that are missing."""
    import importlib.util

    from ..errors import MissingDependency
    missing = [m for m in _LIVE_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(f"serving a plan needs {missing}: install the live extra, "
                                f"pip install -e \".[live]\" (make install brings it)")
