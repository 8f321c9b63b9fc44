"""Own inputs: MoE configs (llama4, gpt_oss, deepseek_v3), GPUs described in a problem file,
score tables from Python, JupyterLab working copies and the package metadata a citer reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import routerwise
import routerwise as rw
from routerwise.data.score_predictor import HELD_OUT_FOLDS, PredictedScores
from routerwise.data.scores import load_score_table
from routerwise.errors import DataError, ValidationError
from routerwise.planning.problem_file import read_problem_file
from routerwise.problem import Workload
from routerwise.serving import architectures, hardware, memory

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "data" / "examples"

# Public config.json field names and values (Hugging Face model repositories).
DEEPSEEK_V3 = {
    "model_type": "deepseek_v3", "_name_or_path": "deepseek-ai/DeepSeek-V3", "hidden_size": 7168,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
    "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
    "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
    "moe_layer_freq": 1, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 128, "v_head_dim": 128, "vocab_size": 129280,
    "tie_word_embeddings": False, "max_position_embeddings": 163840,
    "num_nextn_predict_layers": 1}
GPT_OSS_120B = {
    "model_type": "gpt_oss", "hidden_size": 2880, "num_hidden_layers": 36,
    "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
    "intermediate_size": 2880, "num_local_experts": 128, "experts_per_token": 4,
    "vocab_size": 201088, "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 18, "tie_word_embeddings": False,
    "max_position_embeddings": 131072, "quantization_config": {"quant_method": "mxfp4"}}
DEEPSEEK_V2_LITE = {
    "model_type": "deepseek_v2", "hidden_size": 2048, "num_hidden_layers": 27,
    "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 10944,
    "moe_intermediate_size": 1408, "n_routed_experts": 64, "n_shared_experts": 2,
    "num_experts_per_tok": 6, "first_k_dense_replace": 1, "moe_layer_freq": 1,
    "kv_lora_rank": 512, "q_lora_rank": None, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
    "v_head_dim": 128, "vocab_size": 102400, "tie_word_embeddings": False}
LLAMA4_TEXT = {
    "model_type": "llama4_text", "hidden_size": 5120, "num_hidden_layers": 48,
    "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
    "intermediate_size": 8192, "intermediate_size_mlp": 16384, "num_experts_per_tok": 1,
    "vocab_size": 202048, "tie_word_embeddings": False, "max_position_embeddings": 1048576}
LLAMA4_SCOUT = {"model_type": "llama4", "text_config": {
    **LLAMA4_TEXT, "num_local_experts": 16, "interleave_moe_layer_step": 1}}
LLAMA4_MAVERICK = {"model_type": "llama4", "text_config": {
    **LLAMA4_TEXT, "num_local_experts": 128, "interleave_moe_layer_step": 2}}


@pytest.fixture(autouse=True)
def _restore_gpu_catalogue():
    """A problem file registers the GPU it describes; later tests see the catalogue as shipped."""
    before = dict(hardware.GPUS)
    yield
    hardware.GPUS.clear()
    hardware.GPUS.update(before)


def _config(tmp_path: Path, cfg: dict, name: str = "config.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(cfg))
    return p


# published total / active parameter counts, billions (model cards; Llama 4: text weights)
@pytest.mark.parametrize("cfg,total_b,active_b", [
    (DEEPSEEK_V3, 671.0, 37.0), (GPT_OSS_120B, 116.8, 5.1), (LLAMA4_SCOUT, 107.8, 17.0),
    (LLAMA4_MAVERICK, 400.7, 17.0), (DEEPSEEK_V2_LITE, 15.7, 2.4)],
    ids=["deepseek_v3", "gpt_oss", "llama4-scout", "llama4-maverick", "deepseek_v2_lite"])
def test_moe_configs_are_read_with_their_published_sizes(tmp_path, cfg, total_b, active_b):
    a = architectures.from_hf_config(_config(tmp_path, cfg), name="m")
    assert a.is_moe and a.gated_mlp
    assert a.param_count() / 1e9 == pytest.approx(total_b, rel=0.01)
    assert a.active_params() / 1e9 == pytest.approx(active_b, rel=0.06)


def test_moe_layout_fields(tmp_path):
    ds = architectures.from_hf_config(_config(tmp_path, DEEPSEEK_V3, "ds.json"))
    assert (ds.num_experts, ds.experts_per_token, ds.shared_experts) == (256, 8, 1)
    assert (ds.dense_layers, ds.dense_intermediate_size, ds.intermediate_size) == (3, 18432, 2048)
    assert (ds.kv_lora_rank, ds.q_lora_rank, ds.head_dim, ds.v_head_dim) == (512, 1536, 192, 128)
    assert "multi-token-prediction" in ds.notes
    mav = architectures.from_hf_config(_config(tmp_path, LLAMA4_MAVERICK, "mav.json"))
    assert (mav.dense_layers, mav.dense_intermediate_size, mav.shared_experts) == (24, 16384, 1)
    oss = architectures.from_hf_config(_config(tmp_path, GPT_OSS_120B, "oss.json"))
    assert (oss.num_experts, oss.experts_per_token) == (128, 4)
    assert "sliding-window" in oss.notes and "18 of 36" in oss.notes and "mxfp4" in oss.notes


def test_latent_attention_kv_cache_is_the_latent_held_whole_by_each_rank(tmp_path):
    ds = architectures.from_hf_config(_config(tmp_path, DEEPSEEK_V3), params_b=671.0)
    # one latent of kv_lora_rank + qk_rope_head_dim values per layer, not K and V per head
    assert ds.kv_bytes_per_token(2) == 61 * (512 + 64) * 2
    lite = architectures.from_hf_config(_config(tmp_path, DEEPSEEK_V2_LITE, "lite.json"))
    assert lite.kv_shards(2) == 1 and lite.q_lora_rank == 0
    got = memory.kv_capacity_tokens(lite, 2, "A100-80GB", 0.9)
    # every rank holds all of it: capacity is one GPU's free memory over the latent's bytes
    free = 0.9 * hardware.gpu_spec("A100-80GB").memory_gb - memory.weights_gb_per_shard(lite, 2) \
        - memory.DEFAULT.per_gpu_overhead_gb
    assert got == int(free * memory.GB // lite.kv_bytes_per_token(2)) > 0


def test_step_costs_of_moe_layers_and_latent_attention(tmp_path):
    from dataclasses import replace

    from routerwise.serving.stepcost import replica_step_times

    lite = architectures.from_hf_config(_config(tmp_path, DEEPSEEK_V2_LITE))
    st = replica_step_times(lite, "A100-80GB", 1)
    assert np.isfinite(st.decode_base_ms[1:]).all() and st.decode_base_ms[1] > 0
    # per-head K and V of 16 heads x 192 (no latent) read ~10x more bytes per cached token
    per_head = replace(lite, kv_lora_rank=0, qk_rope_head_dim=0, v_head_dim=0)
    assert st.decode_ms_per_context_token < replica_step_times(
        per_head, "A100-80GB", 1).decode_ms_per_context_token
    # shared experts and the dense first layer are weights every decode step reads
    bare = replace(lite, shared_experts=0, dense_layers=0, dense_intermediate_size=0)
    assert st.decode_base_ms[1] > replica_step_times(bare, "A100-80GB", 1).decode_base_ms[1]


def _l40s_problem(tmp_path: Path, cluster: str) -> Path:
    for f in ("scores.csv", "chat-8b.config.json"):
        shutil.copy(EXAMPLES / f, tmp_path / f)
    p = tmp_path / "problem.toml"
    p.write_text(f"""name = "l40s"
[cluster]
{cluster}
[[models]]
name = "chat-8b"
config = "chat-8b.config.json"
params_b = 8.03
[scores]
table = "scores.csv"
[latency]
simulate = true
num_requests = 300
[workload]
arrival_rate_rps = 2.0
[slo]
latency_ms = 1500.0
[space]
tp_degrees = [1]
compute_tenths = [10]
""")
    return p


def test_problem_file_describes_an_uncatalogued_gpu_that_simulate_runs_on(tmp_path):
    p = _l40s_problem(tmp_path, 'gpu = "L40S"\nnum_gpus = 1\nmem_gb = 48.0\nhbm_gbs = 864.0\n'
                                'bf16_tflops = 362.0\ninterconnect_gbs = 64.0')
    inputs = read_problem_file(p)
    prob = inputs.problem
    assert [c.model for c in prob.profiles.curves] == ["chat-8b"]
    assert prob.profiles.curves[0].source == "simulated"
    assert any("L40S: user-described" in a and "ampere" in a for a in prob.assumptions)
    spec = hardware.gpu_spec("L40S")
    assert (spec.hbm_gbs, spec.peak_bf16_tflops, spec.nvlink_gbs) == (864.0, 362.0, 64.0)
    assert spec.memory_gb == pytest.approx(48.0)
    plan = rw.solve(prob)
    assert plan.status == "optimal"
    record = rw.replay_record(prob, plan, inputs.scores, archs=inputs.architectures)
    assert record["replayed_ms"] > 0


@pytest.mark.parametrize("cluster,expect", [
    ('gpu = "L40S-x"\nnum_gpus = 1\nmem_gb = 48.0',
     r"simulate = true needs the figures of GPU 'L40S-x'.*hbm_gbs.*bf16_tflops"),
    ('gpu = "L40S-y"\nnum_gpus = 1\nmem_gb = 48.0\nbf16_tflops = 362.0',
     r"GPU 'L40S-y' is described by bf16_tflops but lacks hbm_gbs"),
    ('gpu = "A100-80GB"\nnum_gpus = 1\nhbm_gbs = 1.0\nbf16_tflops = 1.0\nmem_gb = 80.0',
     r"'A100-80GB' is in the catalogue already"),
])
def test_simulation_says_which_gpu_figures_it_needs(tmp_path, cluster, expect):
    with pytest.raises(ValidationError, match=expect):
        read_problem_file(_l40s_problem(tmp_path, cluster))


def test_score_table_from_a_dataframe_reports_extra_columns():
    df = pd.read_csv(EXAMPLES / "scores.csv", dtype={"prompt_id": str})
    df["split"] = np.where(np.arange(len(df)) % 2 == 0, "train", "test")
    qm = load_score_table(df, ["chat-70b", "chat-8b"])
    assert qm.model_names == ("chat-70b", "chat-8b") and qm.prompt_tokens is not None
    assert any("split" in n for n in qm.notes)
    assert qm.scores.shape == (df["prompt_id"].nunique(), 2)
    bad = df.copy()
    bad["score"] = bad["score"].astype(object)
    bad.loc[5, "score"] = "high"
    with pytest.raises(DataError, match=r"DataFrame.*row 6"):
        load_score_table(bad)


def test_quality_matrix_builds_a_workload():
    qm = load_score_table(EXAMPLES / "scores.csv")
    truth = load_score_table(EXAMPLES / "true_scores.csv")
    wl = qm.to_workload(7.5, models=["chat-24b", "chat-8b"], true_scores=truth)
    assert isinstance(wl, Workload) and wl.arrival_rate_rps == 7.5
    assert wl.model_names == ("chat-24b", "chat-8b") and wl.prompt_ids == qm.prompt_ids
    i = qm.model_names.index("chat-24b")
    np.testing.assert_array_equal(wl.scores[:, 0], qm.scores[:, i])
    np.testing.assert_array_equal(wl.true_scores[:, 0], truth.scores[:, i])
    with pytest.raises(ValidationError, match="same prompts"):
        qm.to_workload(1.0, true_scores=truth.subset([0, 1]))


def test_predicted_scores_subset():
    rng = np.random.default_rng(0)
    p, t, b = (rng.uniform(size=(4, 3)) for _ in range(3))
    ps = PredictedScores(p, t, b, ("a", "b", "c"), ("p0", "p1", "p2", "p3"), "test",
                         HELD_OUT_FOLDS, 0.0)
    sub = ps.subset(models=["c", "a"], prompts=["p2", "p0"])
    assert sub.model_names == ("c", "a") and sub.prompt_ids == ("p2", "p0")
    np.testing.assert_array_equal(sub.predicted, p[np.ix_([2, 0], [2, 0])])
    np.testing.assert_array_equal(sub.true, t[np.ix_([2, 0], [2, 0])])
    masked = ps.subset(prompts=np.array([True, False, False, True]))
    assert masked.prompt_ids == ("p0", "p3") and masked.model_names == ps.model_names
    assert masked.to_workload(3.0).scores.shape == (2, 3)
    with pytest.raises(ValidationError, match="unknown prompt ids"):
        ps.subset(prompts=["nope"])
    with pytest.raises(ValidationError, match="unknown: \\['z'\\]"):
        ps.subset(models=["z"])


def test_readme_adds_another_ladder_from_python(monkeypatch):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"Another ladder from Python.*?```python\n(.*?)```", text, flags=re.S)
    assert m, "README has no 'Another ladder from Python' example"
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(compile(m.group(1), "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    assert scope["plan"].status == "optimal"
    assert scope["ladder"].num_prompts < load_score_table(EXAMPLES / "scores.csv").num_prompts


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_lab_copies_notebooks_without_clobbering_edits(tmp_path):
    lab = tmp_path / "lab"

    def make(target):
        subprocess.run(["make", "-s", "-C", str(REPO), target, f"LAB_DIR={lab}"], check=True,
                       capture_output=True, text=True)

    make("lab-copies")
    names = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert sorted(p.name for p in lab.glob("*.ipynb")) == names
    edited = lab / names[0]
    edited.write_text("my edits")
    make("lab-copies")
    assert edited.read_text() == "my edits"
    make("lab-reset")
    assert edited.read_bytes() == (REPO / "notebooks" / names[0]).read_bytes()
    assert (lab / "previous" / names[0]).read_text() == "my edits"
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "lab/x.ipynb"])
    assert ignored.returncode == 0, "lab/ must be git-ignored"


def test_package_metadata_agrees_with_the_citation():
    proj = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert proj["version"] == cff["version"] == routerwise.__version__ == "0.3.0"
    assert [a["name"] for a in proj["authors"]] == [a["name"] for a in cff["authors"]]
    assert proj["keywords"] == cff["keywords"]
    assert "Programming Language :: Python :: 3.11" in proj["classifiers"]
    assert not [c for c in proj["classifiers"] if c.startswith("License ::")]  # PEP 639
    paper_urls = {r.get("url") for r in cff["references"]}
    assert proj["urls"]["Paper"] in paper_urls
    if "repository-code" in cff or "Repository" in proj["urls"]:
        assert cff.get("repository-code") == proj["urls"].get("Repository")
