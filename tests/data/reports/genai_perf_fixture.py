"""Write the genai-perf fixture with genai-perf's own statistics code (run in its environment).

    /work/bench-venv-genai/bin/python tests/data/reports/genai_perf_fixture.py

genai-perf 0.0.16 installs from PyPI, but ``genai-perf profile`` drives Triton's C++
``perf_analyzer`` binary, which PyPI does not ship (the ``perf_analyzer`` wheel is a
placeholder): the tool cannot measure here. So the per-request numbers are those measured by
``vllm bench serve`` (``vllm-bench/detailed-{2,4}rps.json``: same server, same lengths), turned
into genai-perf's metrics the way its ``LLMProfileDataParser`` does (nanoseconds; ITL = (latency
- TTFT) / (output - 1)), summarised by genai-perf's ``Statistics`` and written with its
``ConfigCommand`` as ``input_config``, as its ``JsonExporter`` writes
``profile_export_genai_perf.json``. The files carry ``"written_from_docs"`` saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

from genai_perf.config.input.config_command import ConfigCommand
from genai_perf.metrics.llm_metrics import LLMMetrics
from genai_perf.metrics.statistics import Statistics

HERE = Path(__file__).resolve().parent
NOTE = ("statistics computed by genai-perf 0.0.16's Statistics from requests measured by vllm "
        "bench serve (perf_analyzer cannot run here); see tests/data/reports/genai-perf/README.md")


def main() -> None:
    for rate in (2, 4):
        raw = json.loads((HERE / "vllm-bench" / f"detailed-{rate}rps.json").read_text())
        ok = [i for i, e in enumerate(raw["errors"]) if not e]
        start = [raw["start_times"][i] for i in ok]
        lat = [round(raw["latencies"][i] * 1e9) for i in ok]
        ttft = [round(raw["ttfts"][i] * 1e9) for i in ok]
        out = [raw["output_lens"][i] for i in ok]
        itl = [round((a - b) / (n - 1)) for a, b, n in zip(lat, ttft, out) if n > 1]
        duration = max(s + a / 1e9 for s, a in zip(start, lat)) - min(start)
        metrics = LLMMetrics(
            request_throughputs=[len(ok) / duration], request_latencies=lat,
            time_to_first_tokens=ttft,
            time_to_second_tokens=[round(raw["itls"][i][0] * 1e9) for i in ok if raw["itls"][i]],
            inter_token_latencies=itl, output_token_throughputs=[sum(out) / duration],
            output_token_throughputs_per_user=[1e9 / x for x in itl],
            output_sequence_lengths=out, input_sequence_lengths=[raw["input_lens"][i] for i in ok])
        stats = Statistics(metrics)
        stats.scale_data()
        config = ConfigCommand(user_config={
            "model_names": "tiny-llama-s",
            "endpoint": {"type": "completions", "streaming": True, "url": "127.0.0.1:8000"},
            "perf_analyzer": {"stimulus": {"request_rate": rate},
                              "measurement": {"mode": "request_count", "num": len(ok)}},
            "input": {"synthetic_tokens": {"mean": 24, "stddev": 0},
                      "output_tokens": {"mean": 8, "stddev": 0}},
            "tokenizer": {"name": "tiny-llama-s"}}, enable_debug_logging=False)
        data = {**stats.stats_dict, "input_config": config.to_json_dict(),
                "written_from_docs": NOTE}
        folder = HERE / "genai-perf" / f"tiny-llama-s-openai-completions-request_rate{rate}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "profile_export_genai_perf.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
