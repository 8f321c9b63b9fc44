"""Measure what the optimizer consumes, on your own GPUs.

* :mod:`profiling.nvml` -- GPU state through NVML (the only module that imports the bindings);
  :mod:`profiling.sampler` records it during a run.
* :mod:`profiling.loadgen` -- open-loop streaming load against OpenAI-compatible endpoints and
  the summary row in the :mod:`routerwise.data.latency_table` schema (``source="measured"``).
* :mod:`profiling.launcher` -- serving engines and the NVIDIA MPS daemon, always torn down.
* :mod:`profiling.sweep` -- resumable, append-only sweeps over (model, tp, share, load).
* :mod:`profiling.gpu_steps` -- prefill/decode step times of Llama-shaped models (PyTorch).

Command line: ``python -m profiling inventory|sample|sweep|steps``.
"""
