"""Regenerate the report fixtures by running the benchmarking tools against a real vLLM server.

    python tests/data/reports/make_fixtures.py vllm-bench
    python tests/data/reports/make_fixtures.py guidellm inference-perf --bench-python .bench-venv/bin/python

(``make bench-tools`` installs GuideLLM and inference-perf, pinned in ``bench-lock.txt``, into
``.bench-venv``; genai-perf's fixture comes from ``genai_perf_fixture.py``, see its README.)

Starts vLLM (``make engine``) on loopback serving the kit's ``tiny-llama-s`` (seed 0, random
weights), runs the named tools (:mod:`profiling.tool_runs`) at a few request rates with fixed
prompt and output lengths (end-of-sequence ignored), writes what they wrote under
``tests/data/reports/<tool>/`` and stops the server. Timings are measured on whatever machine
runs this: the fixtures test the readers, not the machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from profiling import tool_runs
from profiling.launcher import launch
from profiling.tiny_models import build_tiny_model
from profiling.vllm_server import vllm_spec

HERE = Path(__file__).resolve().parent
SERVED = "tiny-llama-s"
INPUT_LEN, OUTPUT_LEN = 24, 8


def vllm_bench(base_url: str, model_dir: Path, out: Path, python: str) -> None:
    """At 2, 4 and 8 req/s with per-request details, 4 and 8 without; 12 requests each."""
    lengths = dict(input_len=INPUT_LEN, output_len=OUTPUT_LEN, python=python)
    tool_runs.vllm_bench(base_url, model_dir, SERVED, out, rates=(2, 4, 8), num_prompts=12,
                         **lengths)
    tool_runs.vllm_bench(base_url, model_dir, SERVED, out, rates=(4, 8), num_prompts=12,
                         detailed=False, **lengths)


def guidellm(base_url: str, model_dir: Path, out: Path, python: str) -> None:
    """Poisson at 2 and 4 req/s, 10 requests each."""
    tool_runs.guidellm(base_url, model_dir, SERVED, out, rates=(2, 4), requests_per_rate=10,
                       input_len=INPUT_LEN, output_len=OUTPUT_LEN, python=python)


def inference_perf(base_url: str, model_dir: Path, out: Path, python: str) -> None:
    """Poisson stages at 2 req/s (5 s) and 4 req/s (3 s)."""
    tool_runs.inference_perf(base_url, model_dir, SERVED, out, stages=((2, 5), (4, 3)),
                             input_len=INPUT_LEN, output_len=OUTPUT_LEN, python=python)


TOOLS = {"vllm-bench": vllm_bench, "guidellm": guidellm, "inference-perf": inference_perf}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tools", nargs="+", choices=sorted(TOOLS))
    ap.add_argument("--bench-python", default=sys.executable,
                    help="the Python whose environment has the tool installed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / SERVED, "tiny-llama-s", seed=0)
        spec = vllm_spec(model_dir, served_model_name=SERVED, max_model_len=256)
        with launch(spec, log_path=Path(tmp) / "engine.log") as engine:
            for tool in args.tools:
                out = HERE / tool
                shutil.rmtree(out, ignore_errors=True)
                python = sys.executable if tool == "vllm-bench" else args.bench_python
                TOOLS[tool](engine.base_url, model_dir, out, python)


if __name__ == "__main__":
    main()
