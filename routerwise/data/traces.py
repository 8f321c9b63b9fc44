"""Public request traces (arrival timestamps, prompt and output token counts) as one record.

Azure LLM inference traces (CSV: TIMESTAMP, ContextTokens, GeneratedTokens) and Mooncake's
(JSONL: timestamp in ms, input_length, output_length), read through the data registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, ValidationError
from .registry import fetch, provenance

__all__ = ["TRACE_KEYS", "Trace", "load_trace"]

TRACE_KEYS = ("azure.conv", "azure.code", "mooncake.conversation")


@dataclass(frozen=True)
class Trace:
    """One trace sorted by arrival: times in seconds from the trace's clock, token counts."""

    key: str
    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    provenance: str


def load_trace(key: str) -> Trace:
    """Read a registered trace (``TRACE_KEYS``), sorted by arrival time."""
    if key not in TRACE_KEYS:
        raise ValidationError(f"unknown trace {key!r}; use one of {TRACE_KEYS}")
    path = fetch(key)
    if key.startswith("azure."):
        df = pd.read_csv(path)
        try:
            t = pd.to_datetime(df["TIMESTAMP"]).astype("int64").to_numpy() / 1e9
        except (KeyError, ValueError) as e:
            raise DataError(f"{path}: cannot parse TIMESTAMP ({e})") from e
        p, o = df["ContextTokens"].to_numpy(), df["GeneratedTokens"].to_numpy()
    else:
        df = pd.read_json(path, lines=True)
        t = df["timestamp"].to_numpy(float) / 1e3
        p, o = df["input_length"].to_numpy(), df["output_length"].to_numpy()
    order = np.argsort(t, kind="stable")
    return Trace(key, t[order], p[order], o[order], provenance(key))
