"""profiling.tool_runs builds the settings the committed tool fixtures were written with."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import yaml

from profiling import tool_runs

DATA = Path(__file__).with_name("data") / "reports"


def test_inference_perf_config_is_the_one_the_fixture_run_recorded():
    built = tool_runs.inference_perf_config(
        "http://127.0.0.1:PORT", Path("MODEL_DIR"), "tiny-llama-s", stages=((2, 5), (4, 3)),
        input_len=24, output_len=8, storage="OUT")
    # inference-perf writes back the config it ran, every default filled in
    ran = yaml.safe_load((DATA / "inference-perf" / "config.yaml").read_text())
    for side in ("input_distribution", "output_distribution"):
        for key, value in built["data"][side].items():
            assert ran["data"][side][key] == value, (side, key)
    assert built["data"]["type"] == ran["data"]["type"] == "random"
    for key in ("type", "interval", "num_workers"):
        assert ran["load"][key] == built["load"][key], key
    assert [(s["rate"], s["duration"]) for s in ran["load"]["stages"]] == \
        [(s["rate"], s["duration"]) for s in built["load"]["stages"]] == [(2, 5), (4, 3)]
    assert ran["server"]["model_name"] == built["server"]["model_name"] == "tiny-llama-s"
    assert ran["server"]["ignore_eos"] is built["server"]["ignore_eos"] is True
    fields = ran["report"]["request_lifecycle"]["per_request_fields"]
    assert fields["request"] is fields["response"] is False and fields["info"] is True


def test_inference_perf_draws_a_prompt_per_request_of_long_runs():
    cfg = tool_runs.inference_perf_config("u", Path("m"), "m", stages=((8, 30), (16, 30)),
                                          input_len=128, output_len=32, storage="o")
    assert cfg["data"]["input_distribution"]["total_count"] == 8 * 30 + 16 * 30


def test_guidellm_scenario_is_the_one_the_fixture_run_recorded():
    built = tool_runs.guidellm_scenario("http://127.0.0.1:PORT", Path("MODEL_DIR"),
                                        "tiny-llama-s", rates=(2, 4), requests_per_rate=10,
                                        input_len=24, output_len=8)["spec"]
    report = json.loads(gzip.decompress((DATA / "guidellm" / "benchmarks.json.gz").read_bytes()))
    strategies = [b["config"]["strategy"] for b in report["benchmarks"]]
    assert [s["type_"] for s in strategies] == [built["profile"]["kind"]] * 2
    assert [s["rate"] for s in strategies] == built["profile"]["rate"] == [2.0, 4.0]
    for b in report["benchmarks"]:
        limit = b["config"]["constraints"]["max_requests"]["args"]
        assert limit["count"] == built["constraints"][0]["count"] == 10
    assert built["data"] == [{"kind": "synthetic_text", "prompt_tokens": 24, "output_tokens": 8}]


def test_gzip_file_replaces_a_file_by_its_gzipped_twin(tmp_path):
    raw = tmp_path / "per_request_lifecycle_metrics.json"
    raw.write_text('[{"start_time": 1.0}]')
    packed = tool_runs.gzip_file(raw)
    assert packed.name == "per_request_lifecycle_metrics.json.gz" and not raw.exists()
    assert gzip.decompress(packed.read_bytes()) == b'[{"start_time": 1.0}]'
    kept = tmp_path / "b.json"
    kept.write_text("{}")
    tool_runs.gzip_file(kept, remove=False)
    assert kept.exists() and (tmp_path / "b.json.gz").exists()


def test_package_version_reads_the_named_environment():
    import sys
    from importlib.metadata import version
    assert tool_runs.package_version(sys.executable, "pyyaml") == version("pyyaml")
    assert tool_runs.package_version(sys.executable, "no-such-package-here") == ""
