"""Progress bars for notebook cells, as ``ROUTERWISE_PROGRESS`` asks (``routerwise.settings``).

``tqdm.auto`` inside a Jupyter kernel without ipywidgets prints a red "IProgress not found"
warning before falling back to a text bar; :func:`tqdm` here picks widget bars only when
ipywidgets is installed (the ``lab`` extra: ``pip install -e ".[lab]"``, ``make lab``), text
bars otherwise, and none under ``ROUTERWISE_PROGRESS=off`` (what ``routerwise reproduce`` sets,
so stored notebook outputs hold no bars whose timings change from run to run).
"""

from __future__ import annotations

from ..settings import progress_bar as tqdm

__all__ = ["tqdm"]
