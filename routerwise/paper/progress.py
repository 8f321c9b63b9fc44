"""Progress bars for notebook cells: widget bars when ipywidgets is installed, text otherwise.

``tqdm.auto`` inside a Jupyter kernel without ipywidgets prints a red "IProgress not found"
warning before falling back to a text bar; :data:`tqdm` here makes the same choice silently.
ipywidgets comes with the ``lab`` extra (``pip install -e ".[lab]"``, ``make lab``).
"""

from __future__ import annotations

import importlib.util

__all__ = ["tqdm", "widgets_available"]


def widgets_available() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


if widgets_available():
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm
