"""Registry of the public data files the kit reads, and one way to get each of them.

Each :class:`DataSource` pins a file in a public GitHub repository at a commit, with its
sha256, licence and citation. :func:`fetch` returns a verified local path:

1. ``ROUTERWISE_DATA_MIRROR`` set: read ``<mirror>/github/<owner>/<repo>/<commit>/<path>``
   (never download);
2. otherwise the cache (``ROUTERWISE_CACHE_DIR``), filled on first use by downloading
   ``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>``.

Checksums are verified every time a file is handed out. The files themselves are never part of
the repository; ``data/README.md`` documents every source and its licence.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..errors import ChecksumMismatch, MissingDataFile
from ..io import atomic_path, sha256_file


@dataclass(frozen=True)
class Repo:
    owner: str
    name: str
    commit: str
    licence: str
    citation: str


@dataclass(frozen=True)
class DataSource:
    key: str
    repo: Repo
    path: str
    sha256: str
    description: str

    @property
    def url(self) -> str:
        r = self.repo
        return f"https://raw.githubusercontent.com/{r.owner}/{r.name}/{r.commit}/{self.path}"

    @property
    def relpath(self) -> str:
        """Location inside a mirror folder (and inside the cache)."""
        r = self.repo
        return f"github/{r.owner}/{r.name}/{r.commit}/{self.path}"


ROUTEPROFILE = Repo("ulab-uiuc", "RouteProfile", "96a5b910b00617a47ccfe043ec5cb5023058b666",
                    "MIT", "U Lab at UIUC, RouteProfile (github.com/ulab-uiuc/RouteProfile)")
LLMROUTER = Repo("ulab-uiuc", "LLMRouter", "4e7a796942ce26e9d5f2b93191c7c2585c99c2e3", "MIT",
                 "U Lab at UIUC, LLMRouter (github.com/ulab-uiuc/LLMRouter)")
INFERENCE_BENCH = Repo("argonne-lcf", "LLM-Inference-Bench",
                       "4211f5d4e9bc0145ed541b6d372d5d8223b44235", "BSD-3-Clause",
                       "Argonne National Laboratory, LLM-Inference-Bench (SC'24 workshops)")
SPLITWISE = Repo("Mutinifni", "splitwise-sim", "8f99e7dc9b407f4ce2488d03dd44c0b8b946dab0", "MIT",
                 "Patel et al., Splitwise, ISCA 2024")
VIDUR = Repo("microsoft", "vidur", "7d47513363ec447a741ac5e47241580b47724fbf", "MIT",
             "Agrawal et al., Vidur, MLSys 2024")
AZURE = Repo("Azure", "AzurePublicDataset", "b469a113cedca53ddc3bdea71a143dc4b7d8700c",
             "CC-BY-4.0", "Patel et al., Splitwise, ISCA 2024 (Azure LLM inference trace 2023)")
MOONCAKE = Repo("kvcache-ai", "Mooncake", "3b5a594133958449a1feaf1c9e0fc1b553e34a28",
                "Apache-2.0", "Qin et al., Mooncake, FAST 2025")

_VIDUR_MLP = {  # (gpu, hf model id) -> sha256 of data/profiling/compute/<gpu>/<id>/mlp.csv
    ("a100", "Qwen/Qwen-72B"): "81a4a7b16a99e256f1f47cc25c3d098ecf4ff7ab2260e921759dd7c06e93cce9",
    ("a100", "codellama/CodeLlama-34b-Instruct-hf"): "9ba6058c55b7c291ccdf9cd445655de93d3a3dfc0fdd8b08f654170413906dce",
    ("a100", "internlm/internlm-20b"): "efdad580da6ecb50e3716543439a31fc71484de365e0f8cfe9430c5e4d5487c3",
    ("a100", "meta-llama/Llama-2-70b-hf"): "d690ce601f94ab80586e1d5a6a92ea0d64114dc3e0895bf32b3bee270f3d9b7f",
    ("a100", "meta-llama/Llama-2-7b-hf"): "2cfacca979f32e83257753cf6fd815a71af8ba9a7a9d0643b18d9f54e8a37688",
    ("a100", "meta-llama/Meta-Llama-3-70B"): "6929c6f4afae67f7d91a7938ebdb350a47923b077a1b1c2a4e1911f5ec9e601f",
    ("a100", "meta-llama/Meta-Llama-3-8B"): "98c26488298e324e89db7349e213f75c856ae83dc6b17548a68636d2cb5efff0",
    ("a100", "microsoft/phi-2"): "98a16c552786c8dd3d935d1d8c06434d0ae7c628b9c23ac26fbde551b272bde6",
    ("a40", "Qwen/Qwen-72B"): "103db51fecb0bdbb5be21b8274706d5700d0d68f3b6b63cd68967b12d839426f",
    ("a40", "codellama/CodeLlama-34b-Instruct-hf"): "0e9b6468d8fb2d25c55c5d142b5314bb6ae56b6b2991f2de555cb8857389f480",
    ("a40", "internlm/internlm-20b"): "754c48913b65eff1f7db9c8e4dcc45f92b27cccfd59e0309d617a3f07536d0fa",
    ("a40", "meta-llama/Llama-2-70b-hf"): "a666d9463c0f6994f8103175cad6359bd738e6d4f8e66e56f1dcf88482f91485",
    ("a40", "meta-llama/Llama-2-7b-hf"): "f8d0f455d0b72b7975be0ed8e1951dcbf2eabc083001b27f6ef8203c0a96962c",
    ("a40", "microsoft/phi-2"): "a5708bd10ef825617c4cc82ce624a467a5aa87092765be41b1dcde72fb3248eb",
    ("h100", "Qwen/Qwen-72B"): "8056ad93e8dec592de1cc253edb228d1c475646d98db0d113f96b4693f91bb22",
    ("h100", "codellama/CodeLlama-34b-Instruct-hf"): "f5ddfd2ab5a8342c34866f53214a4a4f8f535369c29159da0be2d524bcaf00a5",
    ("h100", "internlm/internlm-20b"): "8d2d37e685652600a4dfc2d91be74a1f197c01f0b41c532443479507446039aa",
    ("h100", "meta-llama/Llama-2-70b-hf"): "fb3581ade7c02caab8a0f7d1ca1ad06a7b0fbac3d9f32a9ed46ae55d95fd6bb3",
    ("h100", "meta-llama/Llama-2-7b-hf"): "b1a2def08857d10e5f66c3b5b2d046b6e8caed5c30b2bc920a0462598e3b2a59",
    ("h100", "microsoft/phi-2"): "dfbf4965acfdd01a5f32f8326873df299a226e95bdd496dac99e766f952430fc",
}
_VIDUR_NET = {  # (node, op) -> sha256 of data/profiling/network/<node>/<op>.csv
    ("a100_dgx", "all_reduce"): "5ea3f3c229fee1ef70ea308881fff420d60ab6f30e86edda1ed6146b12eb28ef",
    ("a100_dgx", "send_recv"): "7e5968cf616af8208a1420816c4ffba9ee857cd989148ae54ebf46239e477a72",
    ("a100_pairwise_nvlink", "all_reduce"): "27428d884ae095800e81366c7517af93fd7476633cfe5e55bdd155e004485dab",
    ("a100_pairwise_nvlink", "send_recv"): "b962137cf047ab0bb80d11f45ea2a008b9684d0749805995b44b112ae302fff4",
    ("a40_pairwise_nvlink", "send_recv"): "35fa1923766235c3ffa9d48213af0d436f971d7b856e1e180fe8ddd37730d128",
    ("h100_dgx", "all_reduce"): "7bc107da2ca2790ab5aa6585eba71603bf7359dd7e7cba1b586f885cae8bcb81",
    ("h100_dgx", "send_recv"): "605b758cd4791cbbd1fab8d5d990463b237346e9365823d768299368fc50c4c9",
    ("h100_pairwise_nvlink", "all_reduce"): "8d68ee6979682726cd7c1d06b8a3656dea5bf53d074d62b3e080ed306b03c155",
    ("h100_pairwise_nvlink", "send_recv"): "b962137cf047ab0bb80d11f45ea2a008b9684d0749805995b44b112ae302fff4",
}


def _build_registry() -> dict[str, DataSource]:
    src = [
        DataSource("routeprofile.routing_test", ROUTEPROFILE, "route_data/routing_test_data.json",
                   "45394440924d7a83f454022f42e57e6eda80ff10663e59442c0fc579fa68220b",
                   "600 prompts (12 tasks x 50) x 8 open models: score in [0,1] and token counts"),
        DataSource("routeprofile.candidate_models", ROUTEPROFILE,
                   "profile_data/candidate_models.json",
                   "047e7fd312e61eafba630aa417c3818f7082f850c8c87c83d4db161802e226c1",
                   "model card of the 8 RouteProfile models: parameter counts, architectures"),
        DataSource("llmrouter.train", LLMROUTER, "data/dcrouter_preprocessed/train.json",
                   "ad3ae70149998f02cbf0dd4557ccb6afcf365ac9391b7371329ffc22201e90e3",
                   "5,608 prompts x 9 open models: binary/graded scores (dict per prompt)"),
        DataSource("llmrouter.test", LLMROUTER, "data/dcrouter_preprocessed/test.json",
                   "fbb6d3e3f62c7018e5446d3154cc05812d3124381f774738e9f0bac5bff79c79",
                   "500 prompts x 9 open models (held-out split)"),
        DataSource("inference_bench.all_results", INFERENCE_BENCH, "Plots/All_results.csv",
                   "631a12e08c786ce2d4bdfdc0f67b93234360682cb4b36c93806270ddcfd58412",
                   "static-batch latency/throughput: hardware x TP x framework x model x L x batch"),
        DataSource("inference_bench.ttft", INFERENCE_BENCH, "Plots/Fig_21/all_results_TTFT.csv",
                   "33046baa43ca27f8e5cff5dcf56d3167ceba7c74aac4171ceefd2a3ce0280341",
                   "time to first token of static batches (input 1024, output 1)"),
        DataSource("inference_bench.ttft_itl", INFERENCE_BENCH,
                   "Plots/Fig_22/all_results_TTFT_ITL.csv",
                   "97b406122a3015ecadfb8c96b57edcc3f31186f70ffbf3eddf100b51c02b452d",
                   "TTFT and end latency of static batches"),
        DataSource("inference_bench.tp_pp", INFERENCE_BENCH, "Plots/Fig_5_a/TP_PP_Results.csv",
                   "d5fe6955a22a4e754218f5cbf24e3518c227b25ce741523085afc7d259af2c37",
                   "tensor vs pipeline parallelism runs"),
        DataSource("inference_bench.power", INFERENCE_BENCH, "Plots/Fig_16_a_b/power_results.csv",
                   "0b2ee7555fd76f00b6390d515d20e376077cc5abd4bce56ebc224d18be56adac",
                   "static-batch runs with average power"),
        DataSource("splitwise.perf_model", SPLITWISE, "data/perf_model.csv",
                   "dbbe505d1d64fc4bd1ec03c50edf944643586de4f68a81e94cbd55dd5bdfbf41",
                   "Llama-2-70B / BLOOM-176B prefill (prompt_time) and decode (token_time) ms"),
        DataSource("azure.code", AZURE, "data/AzureLLMInferenceTrace_code.csv",
                   "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
                   "one hour of code-completion requests: timestamp, context and generated tokens"),
        DataSource("azure.conv", AZURE, "data/AzureLLMInferenceTrace_conv.csv",
                   "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8",
                   "one hour of conversation requests: timestamp, context and generated tokens"),
        DataSource("mooncake.conversation", MOONCAKE,
                   "FAST25-release/traces/conversation_trace.jsonl",
                   "b8cbb061a85206d729d91cdc2981f43c9e0d99209dce588d3af5f7934408b9df",
                   "timestamp (ms), input_length, output_length, hash_ids"),
        DataSource("mooncake.synthetic", MOONCAKE, "FAST25-release/traces/synthetic_trace.jsonl",
                   "bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131",
                   "timestamp (ms), input_length, output_length, hash_ids"),
        DataSource("vidur.trace.splitwise_code", VIDUR, "data/processed_traces/splitwise_code.csv",
                   "f266b907d109d471c61283ab69771c17ad79a18b33ff6e96aa546346f52767a6",
                   "request lengths of the Azure code trace (Llama-2 tokenizer)"),
        DataSource("vidur.trace.splitwise_conv", VIDUR, "data/processed_traces/splitwise_conv.csv",
                   "439e4138b7e384f316de614c071f7162be05b8af0cef866f82faacd1b0472249",
                   "request lengths of the Azure conversation trace (Llama-2 tokenizer)"),
        DataSource("vidur.trace.arxiv_summarization", VIDUR,
                   "data/processed_traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
                   "9d3580538d915ca75e4aaaa54590b42dbb17abc6d74c8913310cf07c232adcdc",
                   "request lengths of arXiv summarization prompts"),
    ]
    for (gpu, model), sha in _VIDUR_MLP.items():
        src.append(DataSource(f"vidur.mlp.{gpu}.{model}", VIDUR,
                              f"data/profiling/compute/{gpu}/{model}/mlp.csv", sha,
                              f"per-layer linear/MLP operator times (ms) of {model} on {gpu}"))
    for (node, op), sha in _VIDUR_NET.items():
        src.append(DataSource(f"vidur.{op}.{node}", VIDUR,
                              f"data/profiling/network/{node}/{op}.csv", sha,
                              f"{op} collective timings on {node}"))
    return {s.key: s for s in src}


REGISTRY: dict[str, DataSource] = _build_registry()


def source(key: str) -> DataSource:
    try:
        return REGISTRY[key]
    except KeyError:
        raise MissingDataFile(f"no data source {key!r} in the registry; known keys: "
                              f"{sorted(REGISTRY)}") from None


def _verify(path: Path, src: DataSource) -> Path:
    got = sha256_file(path)
    if got != src.sha256:
        raise ChecksumMismatch(
            f"{path} (source {src.key!r}) has sha256 {got}, expected {src.sha256}. The file is "
            f"corrupt or a different version: delete it and fetch again from {src.url}")
    return path


def fetch(key: str, *, timeout_s: float = 60.0) -> Path:
    """Return a local, checksum-verified path to registered file ``key``."""
    src = source(key)
    offline = settings.offline()  # read first: a malformed value is an error even with a mirror
    mirror = settings.data_mirror()
    if mirror is not None:
        p = mirror / src.relpath
        if not p.is_file():
            raise MissingDataFile(
                f"data file {src.key!r} is not in the mirror: looked for {p} "
                f"(ROUTERWISE_DATA_MIRROR={mirror}). Copy {src.url} there, or unset "
                f"ROUTERWISE_DATA_MIRROR to download into the cache")
        return _verify(p, src)
    cached = settings.cache_dir() / src.relpath
    if cached.is_file():
        return _verify(cached, src)
    if offline:
        raise MissingDataFile(
            f"data file {src.key!r} is not cached at {cached} and ROUTERWISE_OFFLINE is set. "
            f"Set ROUTERWISE_DATA_MIRROR to a mirror folder or allow downloads from {src.url}")
    try:
        with atomic_path(cached) as tmp:
            with urllib.request.urlopen(src.url, timeout=timeout_s) as r, open(tmp, "wb") as f:
                while block := r.read(1 << 20):
                    f.write(block)
            _verify(tmp, src)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise MissingDataFile(
            f"could not download data file {src.key!r} from {src.url} ({e}); it was not in the "
            f"cache at {cached}. If this machine is offline, set ROUTERWISE_DATA_MIRROR to a "
            f"folder laid out like github/<owner>/<repo>/<commit>/<path>") from e
    return cached


def provenance(key: str) -> str:
    """One line naming the file exactly: repo@commit:path (licence)."""
    s = source(key)
    return f"{s.repo.owner}/{s.repo.name}@{s.repo.commit[:8]}:{s.path} ({s.repo.licence})"
