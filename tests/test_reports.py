"""routerwise.data.reports: each benchmarking tool's output reads to the right levels and requests.

Every expected number is computed here again from the raw file (or taken from the tool's own
summary fields), independently of the readers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_engine import FakeEngine
from fake_nvml import scenario

from profiling import sweep as sw
from profiling.loadgen import synthetic_prompts
from routerwise.data.measured_runs import REQUEST_COLUMNS
from routerwise.data.reports import LEVEL_COLUMNS, ReportFormatError, read_report, sniff
from routerwise.errors import DataError

DATA = Path(__file__).with_name("data") / "reports"
pytestmark = [pytest.mark.timeout(120),  # the loopback sweep's client can lag on a busy host
              pytest.mark.filterwarnings("ignore:the load generator fell behind")]


# ---------------------------------------------------------------------------------------------
# The kit's own sweep output


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A sweep of two models (two curves) at two rates against the loopback engine."""
    out = tmp_path_factory.mktemp("sweep")
    prompts = synthetic_prompts(6, prompt_words=8, max_tokens=5)
    with FakeEngine(ttft_s=0.01, tpot_s=0.002) as eng:
        setups = [sw.SweepSetup(m, 1, 1.0, endpoint_url=eng.url, served_model="fake-model")
                  for m in ("fake-a", "fake-b")]
        sw.run_sweep(setups, [5.0, 10.0], out, prompts=prompts, progress=False,
                     num_requests=6, gpu="loopback", nvml_backend=scenario("no_library"),
                     max_concurrency=7)
    return out, {s.model: s.folder(out) for s in setups}


def _curve_copy(sweep, tmp_path, model="fake-a") -> Path:
    dst = tmp_path / "curve"
    shutil.copytree(sweep[1][model], dst)
    return dst


def test_kit_reads_a_sweep_curve(sweep):
    curve = sweep[1]["fake-a"]
    rep = read_report(curve, "kit")
    assert rep.format == "kit" and rep.model == "fake-a"
    assert list(rep.levels.columns) == list(LEVEL_COLUMNS)
    assert list(rep.levels["rate_rps"]) == [5.0, 10.0] and list(rep.levels["level"]) == [0, 1]
    assert set(rep.levels["arrival"]) == {"poisson"}
    assert list(rep.levels["max_concurrency"]) == [7.0, 7.0]
    assert list(rep.requests.columns) == list(REQUEST_COLUMNS)
    for level, rate in enumerate((5.0, 10.0)):
        point = curve / f"load-{rate:g}rps"
        raw = pd.read_csv(point / "requests.csv")
        summary = pd.read_csv(point / "summary.csv")
        row = rep.levels.iloc[level]
        ok = raw[raw["ok"]]
        assert row["requests_ok"] == len(ok) == summary["num_requests"][0] == 6
        assert row["requests_failed"] == 0
        for stat in ("ttft_mean", "ttft_p50", "ttft_p99", "e2e_mean", "e2e_p99"):
            assert row[f"{stat}_ms"] == pytest.approx(summary[f"{stat}_ms"][0], rel=1e-9)
        assert row["duration_s"] == pytest.approx(summary["duration_s"][0], rel=1e-9)
        assert row["achieved_rps"] == pytest.approx(6 / summary["duration_s"][0], rel=1e-9)
        assert row["output_tokens_mean"] == ok["completion_tokens"].mean() == 5
        assert row["prompt_tokens_mean"] == ok["prompt_tokens"].mean()
        req = rep.requests[rep.requests["segment"] == level]
        assert (req["replay"] == level).all() and (req["rate_rps"] == rate).all()
        assert np.allclose(req["arrival_s"], np.sort(ok["send_s"] - ok["send_s"].min()))
        tpot = (ok["e2e_ms"] - ok["ttft_ms"]) / (ok["completion_tokens"] - 1)
        assert np.allclose(np.sort(req["tpot_ms"]), np.sort(tpot))
        assert row["tpot_mean_ms"] == pytest.approx(tpot.mean())
    sources = rep.provenance()
    assert len(sources) == 4 and all(s["tool"] == "routerwise profiling sweep" for s in sources)
    first = Path(sources[0]["path"])
    assert sources[0]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert sources[0]["tool_version"]  # the routerwise version the points recorded


def test_kit_point_folders_and_sniffing(sweep):
    curve = sweep[1]["fake-a"]
    points = sorted(curve.glob("load-*"))
    rep = read_report(points, "kit")
    assert list(rep.levels["rate_rps"]) == [5.0, 10.0]
    assert sniff(sweep[0]) == "kit" and sniff(points[0]) == "kit"


def test_kit_refuses_mixed_models_and_several_curves(sweep, tmp_path):
    with pytest.raises(DataError, match=r"several models \['fake-a', 'fake-b'\]"):
        read_report(sweep[0], "kit")
    twin = tmp_path / "points" / "fake-a"
    shutil.copytree(sweep[1]["fake-a"], twin / "tp1-share1.0")
    shutil.copytree(sweep[1]["fake-a"], twin / "tp2-share1.0")
    with pytest.raises(DataError, match="holds 2 curves of fake-a"):
        read_report(tmp_path, "kit")


def test_kit_bad_input(sweep, tmp_path):
    with pytest.raises(ReportFormatError, match="expected a profiling sweep folder.*no finished"):
        read_report(tmp_path, "kit")
    curve = _curve_copy(sweep, tmp_path)
    with pytest.raises(DataError, match=r"1 load level\(s\) \(rates \[5.0\]"):
        read_report(curve / "load-5rps", "kit")
    assert len(read_report(curve / "load-5rps", "kit", min_levels=1).levels) == 1

    path = curve / "load-10rps" / "requests.csv"
    raw = pd.read_csv(path)
    raw.loc[2, "prompt_tokens"] = np.nan
    raw.to_csv(path, index=False)
    with pytest.raises(DataError, match="1 of 12 requests lack prompt or output token counts"):
        read_report(curve, "kit")

    for point in curve.glob("load-*"):
        raw = pd.read_csv(point / "requests.csv")
        raw["ok"] = False
        raw.to_csv(point / "requests.csv", index=False)
    with pytest.raises(DataError, match=r"no request succeeded at any load level \(12 failed\)"):
        read_report(curve, "kit")


def test_kit_records_chunk_counted_tokens(sweep, tmp_path):
    curve = _curve_copy(sweep, tmp_path)
    path = curve / "load-5rps" / "requests.csv"
    raw = pd.read_csv(path)
    raw.loc[:1, "tokens_from_usage"] = False
    raw.to_csv(path, index=False)
    rep = read_report(curve, "kit")
    assert any("2 requests had no usage record" in n for n in rep.notes)
    assert json.dumps(rep.provenance())  # provenance is plain JSON


# ---------------------------------------------------------------------------------------------
# vllm bench serve (files written by vLLM 0.32.0's `vllm bench serve`; see make_fixtures.py)

VLLM = DATA / "vllm-bench"


def _raw(path: Path) -> dict:
    return json.loads(path.read_text())


def _edited(src: Path, dst: Path, **changes) -> Path:
    data = _raw(src)
    data.update(changes)
    dst.write_text(json.dumps(data))
    return dst


def test_vllm_bench_detailed_runs():
    files = [VLLM / f"detailed-{r}rps.json" for r in (8, 2, 4)]  # any order
    rep = read_report(files, "vllm-bench")
    assert rep.model == "tiny-llama-s"
    assert list(rep.levels["rate_rps"]) == [2.0, 4.0, 8.0]
    assert set(rep.levels["arrival"]) == {"poisson"} and set(rep.levels["burstiness"]) == {1.0}
    for level, rate in enumerate((2, 4, 8)):
        raw = _raw(VLLM / f"detailed-{rate}rps.json")
        row = rep.levels.iloc[level]
        assert row["requests_ok"] == raw["completed"] == 12 and row["requests_failed"] == 0
        assert row["achieved_rps"] == raw["request_throughput"]
        assert row["duration_s"] == raw["duration"]
        assert row["prompt_tokens_mean"] == np.mean(raw["input_lens"])
        assert row["output_tokens_mean"] == np.mean(raw["output_lens"]) == 8
        req = rep.requests[rep.requests["segment"] == level]
        # the request table, computed by the reader, against the tool's own summary fields
        assert req["ttft_ms"].mean() == pytest.approx(raw["mean_ttft_ms"], rel=1e-9)
        assert req["ttft_ms"].median() == pytest.approx(raw["median_ttft_ms"], rel=1e-9)
        assert req["tpot_ms"].mean() == pytest.approx(raw["mean_tpot_ms"], rel=1e-9)
        assert row["ttft_p99_ms"] == raw["p99_ttft_ms"] and row["tpot_p50_ms"] == raw["median_tpot_ms"]
        assert row["e2e_mean_ms"] == pytest.approx(1000 * np.mean(raw["latencies"]))
        start = np.asarray(raw["start_times"])
        assert np.allclose(req["arrival_s"], np.sort(start - start.min()))
        assert (req["replay"] == level).all() and (req["rate_rps"] == rate).all()
    assert [s["tool_version"] for s in rep.provenance()] == ["0.32.0"] * 3
    assert rep.provenance()[0]["sha256"] == hashlib.sha256(
        (VLLM / "detailed-2rps.json").read_bytes()).hexdigest()


def test_vllm_bench_summary_runs_have_no_request_table():
    rep = read_report(sorted(VLLM.glob("summary-*.json")), "vllm-bench")
    assert rep.requests is None and list(rep.levels["rate_rps"]) == [4.0, 8.0]
    raw = _raw(VLLM / "summary-8rps.json")
    assert "ttfts" not in raw  # no per-request details in these files
    row = rep.levels.iloc[1]
    assert row["ttft_mean_ms"] == raw["mean_ttft_ms"] and row["tpot_p99_ms"] == raw["p99_tpot_ms"]
    assert row["e2e_p99_ms"] == pytest.approx(1000 * np.percentile(raw["latencies"], 99))
    mixed = read_report([VLLM / "summary-4rps.json", VLLM / "detailed-2rps.json"], "vllm-bench")
    assert mixed.requests is None and any("--save-detailed" in n for n in mixed.notes)


def test_vllm_bench_arrival_processes(tmp_path):
    src = VLLM / "summary-4rps.json"
    files = [_edited(src, tmp_path / "a.json", request_rate="inf", max_concurrency=4),
             _edited(src, tmp_path / "b.json", request_rate=3.0, burstiness=0.5),
             _edited(src, tmp_path / "c.json", request_rate="inf", max_concurrency=None)]
    lv = read_report(files, "vllm-bench").levels.set_index("arrival")
    assert lv.loc["concurrency", "max_concurrency"] == 4 and np.isnan(lv.loc["concurrency", "rate_rps"])
    assert lv.loc["gamma", "burstiness"] == 0.5 and lv.loc["gamma", "rate_rps"] == 3.0
    assert np.isinf(lv.loc["burst", "rate_rps"])


def test_vllm_bench_bad_input(tmp_path, sweep):
    src = VLLM / "detailed-2rps.json"
    with pytest.raises(DataError, match="1 load level"):
        read_report(src, "vllm-bench")
    other = _edited(VLLM / "detailed-4rps.json", tmp_path / "other.json", model_id="other-model")
    with pytest.raises(DataError, match=r"several models \['other-model', 'tiny-llama-s'\]"):
        read_report([src, other], "vllm-bench")
    no_tokens = _edited(VLLM / "summary-4rps.json", tmp_path / "nt.json", total_output_tokens=None)
    with pytest.raises(DataError, match="lacks prompt or output token counts"):
        read_report([VLLM / "summary-8rps.json", no_tokens], "vllm-bench")
    empty = [_edited(VLLM / f"summary-{r}rps.json", tmp_path / f"e{r}.json", completed=0, failed=12)
             for r in (4, 8)]
    with pytest.raises(DataError, match=r"no request succeeded at any load level \(24 failed\)"):
        read_report(empty, "vllm-bench")
    with pytest.raises(ReportFormatError, match=r"expected a vllm bench serve result .*found "
                       r"a folder; it looks like a profiling sweep folder.*--format kit"):
        read_report([sweep[0], src], "vllm-bench")
    guidellm_like = tmp_path / "g.json"
    guidellm_like.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(ReportFormatError, match=r"found a file without \['model_id'.*looks like "
                       r"a GuideLLM report: use --format guidellm"):
        read_report([guidellm_like, src], "vllm-bench")
    secret = tmp_path / "broken.json"
    secret.write_text('{"api_key": "sk-SECRET123", oops}')
    with pytest.raises(ReportFormatError, match="does not parse as JSON") as err:
        read_report([secret, src], "vllm-bench")
    assert "SECRET" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# genai-perf (files in genai-perf 0.0.16's format; see genai-perf/README.md)

GENAI = DATA / "genai-perf"


def test_genai_perf_levels_are_the_tools_statistics():
    folders = sorted(GENAI.glob("*request_rate*"))
    rep = read_report(folders[::-1], "genai-perf")
    assert rep.model == "tiny-llama-s" and rep.requests is None
    assert list(rep.levels["rate_rps"]) == [2.0, 4.0] and set(rep.levels["arrival"]) == {"constant"}
    for level, folder in enumerate(folders):
        raw = _raw(folder / "profile_export_genai_perf.json")
        row = rep.levels.iloc[level]
        assert row["ttft_mean_ms"] == raw["time_to_first_token"]["avg"]
        assert row["ttft_p99_ms"] == raw["time_to_first_token"]["p99"]
        assert row["tpot_p50_ms"] == raw["inter_token_latency"]["p50"]
        assert row["e2e_mean_ms"] == raw["request_latency"]["avg"]
        assert row["requests_ok"] == raw["request_count"]["avg"] == 12
        assert row["output_tokens_mean"] == raw["output_sequence_length"]["avg"] == 8
        assert row["duration_s"] == pytest.approx(12 / raw["request_throughput"]["avg"])
    # the statistics were computed by genai-perf from vllm bench's measured requests: they agree
    vb = read_report([VLLM / "detailed-2rps.json", VLLM / "detailed-4rps.json"], "vllm-bench")
    for c in ("ttft_mean_ms", "ttft_p50_ms", "ttft_p99_ms", "tpot_mean_ms", "e2e_mean_ms"):
        assert np.allclose(rep.levels[c], vb.levels[c], rtol=1e-6), c
    assert all(s["written_from_docs"] for s in rep.provenance())


def test_genai_perf_bad_input(tmp_path):
    src = next(GENAI.glob("*request_rate2")) / "profile_export_genai_perf.json"
    conc = _raw(src)
    conc["input_config"]["perf_analyzer"]["stimulus"] = {"concurrency": 4}
    (tmp_path / "c.json").write_text(json.dumps(conc))
    lv = read_report([src, tmp_path / "c.json"], "genai-perf").levels
    assert list(lv["arrival"]) == ["constant", "concurrency"] and lv["max_concurrency"][1] == 4
    other = _raw(src)
    other["input_config"]["model_names"] = ["other-model"]
    (tmp_path / "o.json").write_text(json.dumps(other))
    with pytest.raises(DataError, match="several models"):
        read_report([src, tmp_path / "o.json"], "genai-perf")
    raw_export = tmp_path / "profile_export.json"
    raw_export.write_text(json.dumps({"experiments": [], "service_kind": "openai"}))
    with pytest.raises(ReportFormatError, match="perf_analyzer's raw profile export"):
        read_report([raw_export, src], "genai-perf")
    with pytest.raises(ReportFormatError, match=r"found a file without \['time_to_first_token'.*"
                       r"looks like a vllm bench serve result: use --format vllm-bench"):
        read_report([VLLM / "summary-4rps.json", src], "genai-perf")


# ---------------------------------------------------------------------------------------------
# GuideLLM (a report written by guidellm 0.8.1 against a tiny-llama-s vLLM server)

GUIDELLM = DATA / "guidellm"


def test_guidellm_json_and_yaml_reports():
    import gzip

    raw = json.loads(gzip.decompress((GUIDELLM / "benchmarks.json.gz").read_bytes()))
    rep = read_report(GUIDELLM / "benchmarks.json.gz", "guidellm")
    assert rep.model == "tiny-llama-s" and list(rep.levels["rate_rps"]) == [2.0, 4.0]
    assert rep.provenance()[0]["tool_version"] == raw["metadata"]["guidellm_version"] == "0.8.1"
    for level, bench in enumerate(raw["benchmarks"]):
        m, row = bench["metrics"], rep.levels.iloc[level]
        assert bench["config"]["strategy"]["rate"] == row["rate_rps"]
        assert row["requests_ok"] == m["request_totals"]["successful"] == 10
        assert row["duration_s"] == bench["duration"]
        assert row["tpot_mean_ms"] == m["inter_token_latency_ms"]["successful"]["mean"]
        assert row["ttft_p99_ms"] == m["time_to_first_token_ms"]["successful"]["percentiles"]["p99"]
        reqs = bench["requests"]["successful"]
        req = rep.requests[rep.requests["segment"] == level]
        # the tool's mean TTFT and E2E over requests equal the request table's
        assert req["ttft_ms"].mean() == pytest.approx(row["ttft_mean_ms"], rel=1e-9)
        assert req["e2e_ms"].mean() == pytest.approx(1000 * np.mean([r["request_latency"] for r in reqs]))
        assert req["e2e_ms"].mean() == pytest.approx(row["e2e_mean_ms"], rel=1e-9)
        start = np.array([r["request_start_time"] for r in reqs])
        assert np.allclose(np.sort(req["arrival_s"]), np.sort(start - start.min()))
        tpot = [(r["request_latency"] * 1000 - r["time_to_first_token_ms"]) / (r["output_tokens"] - 1)
                for r in reqs]
        assert np.allclose(np.sort(req["tpot_ms"]), np.sort(tpot))
    yaml_rep = read_report(GUIDELLM / "benchmarks.yaml.gz", "guidellm")
    pd.testing.assert_frame_equal(yaml_rep.levels, rep.levels)


def test_guidellm_bad_input(tmp_path):
    import gzip

    raw = json.loads(gzip.decompress((GUIDELLM / "benchmarks.json.gz").read_bytes()))
    one = dict(raw, benchmarks=raw["benchmarks"][:1])
    (tmp_path / "one.json").write_text(json.dumps(one))
    with pytest.raises(DataError, match="1 load level"):
        read_report(tmp_path / "one.json", "guidellm")
    other = json.loads(json.dumps(raw["benchmarks"][1]))
    other["config"]["backend"]["model"] = "other-model"
    (tmp_path / "mixed.json").write_text(json.dumps(dict(raw, benchmarks=[raw["benchmarks"][0], other])))
    with pytest.raises(DataError, match="several models"):
        read_report(tmp_path / "mixed.json", "guidellm")
    conc = json.loads(json.dumps(raw))
    for i, b in enumerate(conc["benchmarks"]):
        b["config"]["strategy"] = {"type_": "concurrent", "streams": 2 * (i + 1)}
        b["requests"]["successful"] = b["requests"]["successful"][:3]  # a sampled report
    (tmp_path / "conc.json").write_text(json.dumps(conc))
    rep = read_report(tmp_path / "conc.json", "guidellm")
    assert list(rep.levels["max_concurrency"]) == [2.0, 4.0] and rep.requests is None
    assert set(rep.levels["arrival"]) == {"concurrency"}
    with pytest.raises(ReportFormatError, match=r"expected a GuideLLM benchmark report.*without \['benchmarks'\]"
                       r".*looks like a vllm bench serve result"):
        read_report(VLLM / "summary-4rps.json", "guidellm")
    (tmp_path / "bad.yaml").write_text("benchmarks: [unclosed\n  password: hunter2")
    with pytest.raises(ReportFormatError, match="does not parse as YAML") as err:
        read_report(tmp_path / "bad.yaml", "guidellm")
    assert "hunter2" not in str(err.value)


def test_gzipped_reports_read_as_written(tmp_path):
    import gzip
    files = [VLLM / f"detailed-{r}rps.json" for r in (2, 4)]
    zipped = []
    for f in files:
        zipped.append(tmp_path / f"{f.name}.gz")
        zipped[-1].write_bytes(gzip.compress(f.read_bytes()))
    plain, packed = read_report(files, "vllm-bench"), read_report(zipped, "vllm-bench")
    pd.testing.assert_frame_equal(plain.levels, packed.levels)
    pd.testing.assert_frame_equal(plain.requests, packed.requests)
    assert sniff(zipped[0]) == "vllm-bench"
    folder = tmp_path / "iperf"
    shutil.copytree(IPERF, folder)
    records = folder / "per_request_lifecycle_metrics.json"
    (folder / f"{records.name}.gz").write_bytes(gzip.compress(records.read_bytes()))
    records.unlink()
    rep = read_report(folder, "inference-perf")
    pd.testing.assert_frame_equal(rep.requests, read_report(IPERF, "inference-perf").requests)
    assert any(s["path"].endswith(".json.gz") for s in rep.provenance())
    bad = tmp_path / "broken-2rps.json.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ReportFormatError, match="does not decompress"):
        read_report([bad, zipped[1]], "vllm-bench")


# ---------------------------------------------------------------------------------------------
# inference-perf (an output folder written by inference-perf 0.7.0 against the same server)

IPERF = DATA / "inference-perf"


def test_inference_perf_folder():
    rep = read_report(IPERF, "inference-perf")
    assert rep.model == "tiny-llama-s" and list(rep.levels["rate_rps"]) == [2.0, 4.0]
    assert set(rep.levels["arrival"]) == {"poisson"}
    records = sorted(_raw(IPERF / "per_request_lifecycle_metrics.json"), key=lambda r: r["start_time"])
    first = 0
    for level in (0, 1):
        stage = _raw(IPERF / f"stage_{level}_lifecycle_metrics.json")
        ok, row = stage["successes"], rep.levels.iloc[level]
        assert row["requests_ok"] == ok["count"] and row["requests_failed"] == stage["failures"]["count"]
        assert row["ttft_mean_ms"] == pytest.approx(1000 * ok["latency"]["time_to_first_token"]["mean"])
        assert row["e2e_p99_ms"] == pytest.approx(1000 * ok["latency"]["request_latency"]["p99"])
        assert row["output_tokens_mean"] == ok["output_tokens"]["mean"] == 8
        n = stage["load_summary"]["count"]
        recs = records[first:first + n]
        first += n
        # TPOT from each request's latency and server-counted output tokens, not per chunk
        tpot = [((r["end_time"] - r["info"]["response_metrics"]["output_token_times"][0]) * 1000)
                / (r["info"]["response_metrics"]["server_usage"]["completion_tokens"] - 1) for r in recs]
        assert row["tpot_mean_ms"] == pytest.approx(np.mean(tpot))
        assert row["tpot_mean_ms"] != pytest.approx(1000 * ok["latency"]["time_per_output_token"]["mean"])
        req = rep.requests[rep.requests["segment"] == level]
        assert req["ttft_ms"].mean() == pytest.approx(row["ttft_mean_ms"])  # records agree with the stage
        assert len(req) == n
    assert (rep.requests["replay"] == 0).all() and rep.requests["arrival_s"].min() == 0
    assert rep.requests["arrival_s"].max() == pytest.approx(records[-1]["start_time"] - records[0]["start_time"])


def test_inference_perf_without_records_and_bad_input(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(IPERF, folder)
    (folder / "per_request_lifecycle_metrics.json").unlink()
    rep = read_report(folder, "inference-perf")
    assert rep.requests is None and rep.levels["tpot_p99_ms"].isna().all()
    stage = _raw(IPERF / "stage_1_lifecycle_metrics.json")["successes"]
    lat = stage["latency"]
    assert rep.levels["tpot_mean_ms"][1] == pytest.approx(
        1000 * (lat["request_latency"]["mean"] - lat["time_to_first_token"]["mean"]) / 7)
    (folder / "stage_1_lifecycle_metrics.json").unlink()
    with pytest.raises(DataError, match="1 load level"):
        read_report(folder, "inference-perf")
    with pytest.raises(ReportFormatError, match=r"expected an inference-perf output folder.*found "
                       r"no stage_<i>_lifecycle_metrics.json"):
        read_report(tmp_path, "inference-perf")
    (folder / "config.yaml").unlink()
    with pytest.raises(DataError, match="no config.yaml"):
        read_report(folder, "inference-perf")


def test_a_broken_file_of_the_right_format_gets_no_other_format_hint(tmp_path):
    data = _raw(VLLM / "summary-4rps.json")
    del data["model_id"]
    (tmp_path / "a.json").write_text(json.dumps(data))
    with pytest.raises(ReportFormatError, match=r"without \['model_id'\]$"):
        read_report([tmp_path / "a.json", VLLM / "summary-8rps.json"], "vllm-bench")
