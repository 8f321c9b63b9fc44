"""Registry of the public data files the kit reads, and one way to get each of them.

Each :class:`DataSource` pins a file in a public GitHub repository at a commit, with its
sha256, licence and citation. :func:`fetch` returns a verified local path:

1. ``ROUTERWISE_DATA_MIRROR`` set (or ``data_mirror`` in the config file,
   :func:`routerwise.settings.config_path`): read
   ``<mirror>/github/<owner>/<repo>/<commit>/<path>`` (never download);
2. otherwise the cache (``ROUTERWISE_CACHE_DIR``), filled on first use by downloading
   ``https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path>``.

Checksums are verified every time a file is handed out. The files themselves are never part of
the repository; ``data/README.md`` documents every source and its licence.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..errors import ChecksumMismatch, MissingDataFile
from ..io import atomic_path, sha256_file

__all__ = ["Repo", "DataSource", "ROUTEPROFILE", "LLMROUTER", "INFERENCE_BENCH", "SPLITWISE",
           "VIDUR", "AZURE", "MOONCAKE", "LLMD_BENCHMARK", "INFERENCE_SIM", "LLMSERVINGSIM",
           "REGISTRY", "source", "fetch", "provenance"]


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

LLMD_BENCHMARK = Repo("llm-d", "llm-d-benchmark", "8eb9ac187e06a425338d6e7e8f1f5d06a81edde7",
                      "Apache-2.0", "the llm-d project, llm-d-benchmark (github.com/llm-d)")
INFERENCE_SIM = Repo("inference-sim", "inference-sim", "e7a4aa3715982f089bddd0441e85e0a7d1690ec2",
                     "Apache-2.0", "the inference-sim (BLIS) project (github.com/inference-sim)")
LLMSERVINGSIM = Repo("casys-kaist", "LLMServingSim", "5daddb21a545658d5150b535712d0494584b5278",
                     "MIT", "Cho et al. (casys-kaist), LLMServingSim (see its README)")

# Measured online vLLM runs (routerwise.data.measured_runs): path -> sha256, per repository.
_LLMD_SHA = {
    "collected/data/openshift/exp-0/vllm-70b/LMBench_sharegpt_output_0.5.csv":
        "e8683f3c3f39b2d56bb6e77a5857ebffb9f89b4e60722d750b4e50dbdad55b01",
    "collected/data/openshift/exp-0/vllm-70b/LMBench_sharegpt_output_0.67.csv":
        "666bd3e890d6bab0ca89a5057435d5206456ddec8d95530584c38ba6d32cdc0a",
    "collected/data/openshift/exp-0/vllm-70b/LMBench_sharegpt_output_0.84.csv":
        "a4b965fe53c013998b4e81653830b5754095720758fa3faf137b21dc0869b164",
    "collected/data/openshift/exp-0/vllm-70b/LMBench_sharegpt_output_1.17.csv":
        "ec1acc84cb07c09a4ad6a1222bc664de24a7dc54079bb8e66cabba24ce589ba5",
    "collected/data/openshift/exp-0/vllm-70b/LMBench_sharegpt_output_1.34.csv":
        "4c74b7f3cf87fa5d9a511a32bb68b9c80d56fb601527ec9df11915a84ff5242b",
    "collected/data/openshift/exp-0/vllm-70b/LMBench_sharegpt_output_1.csv":
        "7f74ce5b1c3648acbc52211e07ca935b669fc9c45e8301cad40865ac048e405b",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_10.csv":
        "c6a14f7775f3ceef6b2fe4855c9671d958431e6ae80fa60d14bd3c245fe7fe6a",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_100.csv":
        "48ea3b79481765fff5e42be8f61d5ea07015a2e4b7bfdcdeb069fc9fe01201cd",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_12.csv":
        "bc5a62df105e4e39580ee0f77ad54a5a54e81ee41670780f3f3276975b6ca78f",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_15.csv":
        "c232cda0a773d44152c779c4e961a67eb6a5c193761db8cf7cdcbb5c2d379b6d",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_16.csv":
        "772d3820f5c683cab204761598ed1c1e8b66d887c284d0126d1598438fb4b9a4",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_20.csv":
        "b7560c778b19b5cd95e37fabad6dd4d9ac505b46270ab4e982d7cac993718a23",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_24.csv":
        "bf4fac761ed66304c17da35e4eb0f4d556a211dc987b59e2704c5bd0f6f6f405",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_25.csv":
        "db48957148662763639159ec9680e2816547a2cee082d14480f9f894600db35a",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_28.csv":
        "a83f99da4652dedc395983128159bff8c97e1b69faa76a6d9cfc48244ca80406",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_30.csv":
        "5006f19085edef8479881a12068d43cd37b32bc4909a0c18fc7c5a92bba63cb4",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_32.csv":
        "7876d499a5444673d03e7c0a3ea75a8350b3d09bf5f9e60e14c9c366de8b47be",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_35.csv":
        "bb137e3ff30845592187627abe06b8ee46af44fa1bf87e73ce3c3f49721c4d88",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_36.csv":
        "a047cb485ecbfedf996d862611c051ea98546be4b34df174c6efdbd26a3f2ef7",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_4.csv":
        "80adde87728207c665a1d48b9eb536d06de1d6c7c7fafb5d281c67466bfe9d73",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_40.csv":
        "7f080f530ab3e8e3562e813f5d2ed202e180cef792c633effcdcc43518df06f1",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_45.csv":
        "72081994335251983454c04887098347cbb357daac31bff7292e7a160370d4ba",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_5.csv":
        "2de16ca28d3e53b8f5575fc0e824bcd3a2b0bb4fca365fb141158cbdb2bc57d6",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_50.csv":
        "143cc8a9430c9cba52ddcac4235302df889522e894b2154201c39907cab25d2b",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_55.csv":
        "b3d7bfa61365090a46fed5f6d12134c1f7a9c13803c3016a0b46ebe9f8e7e62a",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_60.csv":
        "68f661249d50fe7ecf929a7998ad17dc6b0124b83ff759af24fe1494a86e0cb5",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_65.csv":
        "443767acc62fa029f6db06d5b620577aa20ab59d3d102ea01133c466e68d36f5",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_70.csv":
        "cd21bf86d7b6e317c23f2c833ea2b74900214dccb0ac2c854bebf3d04911d52d",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_75.csv":
        "737956582f5f9d4e917d82cf6ee9128aa5bde1e9a2b0c90819de100b70ed5739",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_8.csv":
        "47ea904592a7e9efe72b36f3c9e30676066392acf328dcd69be1a8480f6a5a50",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_80.csv":
        "899ce618b1471db98877f5b26a6c0cde3a271b45beca6b84c0f09e946c270a2a",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_85.csv":
        "3af62a3118a82aa0de8a7ef1a97f12a894f9e9ce4399498879657ecb508d6dc2",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_90.csv":
        "3c30e74993a5658619c829f6c2ebc80af847c364d1e5bdd0fe0535206769764a",
    "collected/data/openshift/exp-4/vllm-llama4-tp4/LMBench_sharegpt_output_95.csv":
        "e1e9bb7449d0307a51f5cc86a31e4fb1ae185dc07dd712cfde24b100eb174bc3",
    "collected/yamls/exp-0/baseline-vllm/llama-3-70b-deployment.yaml":
        "1543e0606696ce17eb5680aa6da7a8f7898b11ed6e9639749499ea42f996ea8d",
    "collected/yamls/exp-4/baseline-vllm/llama-4-deployment.yaml":
        "f8a6441ae710afc20efa3dcb05f83ed4a8e039151bbb551fee4843d246faea54",
}
_ISIM_SHA = {
    "eval/ground_truth/jan20-codellama-prefill-1/exp-config.yaml":
        "ae4df51d81d8d9f0d8dfeaed9e5e84d709b06c082b9ad50918431551ec9d9aa8",
    "eval/ground_truth/jan20-codellama-prefill-1/traces.json":
        "58da26bb54d4010379fa667c359415ffb81c979b304185a949d742b2be67093e",
    "eval/ground_truth/jan20-codellama-train-1/exp-config.yaml":
        "7bc3153e629aeb30117bf5c139014926e3d65a215abbd0c0d8517ce3ef735dfd",
    "eval/ground_truth/jan20-codellama-train-1/traces.json":
        "86d349803b73c684241b251fec8aa90e837ef185e653e16fc93114040bf4d902",
    "eval/ground_truth/jan20-prefill-llama7b-tp1-1/exp-config.yaml":
        "92b49673ed979bcf08e0346042b81d47a09ce976394cfdfd678562e53769dbef",
    "eval/ground_truth/jan20-prefill-llama7b-tp1-1/traces.json":
        "41d3171913d6285f1a3b6d50bf594fd8a8eacbecf0381d011274611b146a27a4",
    "eval/ground_truth/jan21-llama7b-train-1/exp-config.yaml":
        "1e36753e453ded464747e3629890d16372ec85c77b1cfa42a279afa84ffa5800",
    "eval/ground_truth/jan21-llama7b-train-1/traces.json":
        "477a716d28e6c5d4b4f80f433c8de7216e08a7dac56a9324a6b062a4f05f35cb",
}
_LSS_SHA = {
    "bench/examples/RTX4090/Llama-3.1-8B/vllm/meta.json":
        "56cbcb2a08e9fe6f67d60cad8ee545f86c874f82b46ab413da484f331417b2fc",
    "bench/examples/RTX4090/Llama-3.1-8B/vllm/requests.jsonl":
        "5a6f2a0b09d5eb84bd75b30ed625d883c22b4bcc0a839cd1128ae42f74ecc90d",
    "bench/examples/RTXPRO6000/Llama-3.1-8B/vllm/meta.json":
        "c074b29bddabe66102e3e635dd7910c35927c3f52b73d58d8fa0798f38156ae4",
    "bench/examples/RTXPRO6000/Llama-3.1-8B/vllm/requests.jsonl":
        "0175b31b0ddc02b97eb6da1410dc80fc5900b8785c988e90cacee1021d644682",
    "bench/examples/RTXPRO6000/Qwen3-30B-A3B-Instruct-2507/vllm/meta.json":
        "ae871638b83fbf81bb8b6ac83b5fca00e1e40e5babd46612c0a9368bbcc05fe8",
    "bench/examples/RTXPRO6000/Qwen3-30B-A3B-Instruct-2507/vllm/requests.jsonl":
        "bde98fa878f59f1b3b8b8f9b3b09f8e1ae36be6a8f56040b9a80a97d00a7dc7b",
    "bench/examples/RTXPRO6000/Qwen3-32B/vllm/meta.json":
        "9b56098c6e028d17417a392d041af32cf0cfa741dff07fdd1d0ea9ecba5c0236",
    "bench/examples/RTXPRO6000/Qwen3-32B/vllm/requests.jsonl":
        "7751686bb9f927f5cd39adf901b2d0755b8f1a1182561c3df5446c927f95342f",
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
    for path, sha in _LLMD_SHA.items():
        parts = path.split("/")
        if parts[1] == "yamls":
            key = f"llmd_bench.{parts[2]}.deployment"
        else:
            key = f"llmd_bench.{parts[3]}.{parts[-1][len('LMBench_'):-len('.csv')]}"
        src.append(DataSource(key, LLMD_BENCHMARK, path, sha,
                              "LMBench online run: one row per request (tokens, ttft, launch and "
                              "finish times); rate in the file name" if key[-10:] != "deployment"
                              else "vLLM deployment (engine arguments, GPU product)"))
    for path, sha in _ISIM_SHA.items():
        parts = path.split("/")
        key = f"inference_sim.{parts[2]}.{parts[3].split('.')[0].replace('-', '_')}"
        src.append(DataSource(key, INFERENCE_SIM, path, sha,
                              "GuideLLM sweep on vLLM 0.11: OTLP request spans" if
                              parts[3] == "traces.json" else "experiment engine settings"))
    for path, sha in _LSS_SHA.items():
        parts = path.split("/")
        key = f"llmservingsim.{parts[2]}.{parts[3]}.{parts[5].split('.')[0]}"
        src.append(DataSource(key, LLMSERVINGSIM, path, sha,
                              "vLLM 0.19 Poisson run: per-request engine timestamps" if
                              parts[5] == "requests.jsonl" else "engine arguments and KV blocks"))
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
                f"({settings.data_mirror_origin()}={mirror}). Copy {src.url} there, or unset "
                f"it to download into the cache")
        return _verify(p, src)
    cached = settings.cache_dir() / src.relpath
    if cached.is_file():
        return _verify(cached, src)
    if offline:
        raise MissingDataFile(
            f"data file {src.key!r} is not cached at {cached} and "
            + ("ROUTERWISE_OFFLINE is set" if "ROUTERWISE_OFFLINE" in os.environ
               else f"offline = true in {settings.config_path()}")
            + f". To read a mirror, {settings.mirror_hint()}; or allow downloads from "
              f"{src.url}")
    try:
        with atomic_path(cached) as tmp:
            with urllib.request.urlopen(src.url, timeout=timeout_s) as r, open(tmp, "wb") as f:
                while block := r.read(1 << 20):
                    f.write(block)
            _verify(tmp, src)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise MissingDataFile(
            f"could not download data file {src.key!r} from {src.url} ({e}); it was not in the "
            f"cache at {cached}. If this machine is offline, {settings.mirror_hint()}") from e
    return cached


def provenance(key: str) -> str:
    """One line naming the file exactly: repo@commit:path (licence)."""
    s = source(key)
    return f"{s.repo.owner}/{s.repo.name}@{s.repo.commit[:8]}:{s.path} ({s.repo.licence})"
