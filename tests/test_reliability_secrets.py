"""User strings never become paths; secrets never reach a written file or stderr.

Model names become file and folder names only through ``routerwise.io.safe_name``; the
redactor masks secrets by name (``HF_TOKEN=``, ``--hf_token=``, ``?hf_token=``, any case) and
by shape (``hf_...``, ``sk-...``); a launched engine's command and output are masked before they
reach its log, the profile tables or an error; a table path that names a secrets file does
not echo it.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, needs_mirror

from routerwise.errors import DataError
from routerwise.redact import redact_text, redact_url

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:the load generator fell behind")]

TESTS = Path(__file__).resolve().parent
HF = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567"  # the shape of a Hugging Face token
SK = "sk-proj-ZyXwVuTsRqPoNmLkJiHgFeDcBa98"     # ... and of an OpenAI key
EVIL = "../../../../elsewhere/pwn"
SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


# --- file names from user strings ------------------------------------------------------------

NAMES = ["llama-3.1-8b", "meta-llama/Llama-3.1-8B", "meta-llama--Llama-3.1-8B", EVIL, "..",
         ".", "", "a/b", "a_b", "A_b", "a\\b", "x\n\x00y", "-rf", ".hidden", "модель",
         "m" * 500]


def test_safe_name_is_one_readable_component_and_names_never_collide():
    from routerwise.io import safe_name
    shown = [safe_name(n) for n in NAMES]
    for name, s in zip(NAMES, shown):
        assert SAFE.fullmatch(s) and s not in (".", "..") and len(s) <= 80, (name, s)
    assert len({s.lower() for s in shown}) == len(NAMES)  # case-insensitive file systems too
    assert shown[0].startswith("llama-3.1-8b-")  # ordinary names stay readable
    assert safe_name("llama-3.1-8b") == shown[0]  # and stable


@needs_mirror
def test_a_model_name_cannot_write_outside_the_grid_cache(tmp_path):
    from routerwise.serving import architectures
    from routerwise.serving import curve_grid as pg
    arch = architectures.from_hf_config(REPO / "data" / "examples" / "chat-8b.config.json",
                                        name=EVIL)
    cache = tmp_path / "a" / "b" / "c" / "cache"
    table = pg.build_profile_table([arch], "A100-80GB", (1,), (10,),
                                   pg.LengthSample(np.full(40, 200), np.full(40, 50), "fixed"),
                                   options=pg.GridOptions(num_requests=60), workers=1,
                                   progress=False, cache_dir=cache)
    assert set(table["model"]) == {EVIL}  # the table still names the model as given
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(cache.resolve()) for p in written), written
    assert not (tmp_path / "a" / "b" / "c" / "elsewhere").exists()
    chunks = sorted(p.name for p in cache.glob("profiles/*/chunks/*.csv"))
    assert len(chunks) == 1 and chunks[0].startswith("elsewhere_pwn-")


def test_sweep_point_folders_stay_under_points_and_never_collide(tmp_path):
    from profiling.sweep import SweepSetup, point_dir
    points = (tmp_path / "points").resolve()
    folders = []
    for model in ("..", EVIL, "a/b", "a--b", "llama-3.1-8b"):
        setup = SweepSetup(model, 1, 1.0, endpoint_url="http://127.0.0.1:9")
        folder = point_dir(tmp_path, setup, 5.0).resolve()
        assert folder.is_relative_to(points) and folder.relative_to(points).parts[0] != "..", \
            (model, folder)
        folders.append(folder.relative_to(points).parts[0])
    assert len(set(folders)) == len(folders), folders  # "a/b" used to land in "a--b"
    assert folders[-1].startswith("llama-3.1-8b-")


# --- the redactor ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, secret, kept", [
    ("HF_TOKEN=hf_x1 max_tokens=128", "hf_x1", "max_tokens=128"),
    ("export OPENAI_API_KEY=sk-x1; echo ok", "sk-x1", "echo ok"),
    ("serve m --openai-api-key sk-x1 --port 8000", "sk-x1", "--port 8000"),
    ("serve m --hf_token=x1y --tokenizer-mode auto", "x1y", "--tokenizer-mode auto"),
    ("serve m --hf-token x1y --max-num-batched-tokens 8192", "x1y",
     "--max-num-batched-tokens 8192"),
    ("GET http://h:1/v1/models?hf_token=x1y&model=m", "x1y", "&model=m"),
    ("args: ['--hf-token', 'x1y', '--port', '8000']", "x1y", "'--port', '8000'"),
    ("{'hf_token': 'x1y', 'seed': 0}", "x1y", "'seed': 0"),
    ('{"Github-Access-Token": "x1y z2q", "n": 1}', "z2q", '"n": 1'),  # the whole value
    ("AWS_SECRET_ACCESS_KEY=x1y PGPASSWORD=p2q num_tokens=5", "x1y", "num_tokens=5"),
    ("AWS_SECRET_ACCESS_KEY=x1y PGPASSWORD=p2q num_tokens=5", "p2q", "num_tokens=5"),
    ("X_AUTH=x1y --x-api-key x2y", "x2y", "X_AUTH=***"),
    (f"loaded token {HF} for m", HF, "loaded token *** for m"),
    (f"engine failed: invalid key {SK}.", SK, "engine failed: invalid key ***."),
    ("url: http://h/v1?user_token=x1y&a=1", "x1y", "url: http://h/v1?user_token=***&a=1"),
])
def test_redact_text_masks_secrets_by_name_and_by_shape(text, secret, kept):
    out = redact_text(text)
    assert secret not in out and kept in out, out
    assert redact_text(out) == out


def test_upper_case_names_are_secret_names():
    # fails when the query-name test loses its case folding (API_KEY is not "api_key")
    assert redact_url("http://h:1/v1?API_KEY=k1&HF_TOKEN=h1&model=m") == \
        "http://h:1/v1?API_KEY=***&HF_TOKEN=***&model=m"
    assert redact_text("HF_TOKEN=h1 Api-Key=k1 PASSWORD: p1") == \
        "HF_TOKEN=*** Api-Key=*** PASSWORD: ***"


def test_which_names_are_secret_names_and_which_values_a_command_hands_over():
    from routerwise.redact import is_secret_name, secret_values
    for name in ("HF_TOKEN", "hf-token", "OPENAI_API_KEY", "x-api-key", "apikey",
                 "Authorization", "client_secret", "db_password", "GOOGLE_CREDENTIALS", "auth"):
        assert is_secret_name(name), name
    for name in ("max_tokens", "num_tokens", "tokenizer", "tokenizer-mode", "port", "author",
                 "ssl-keyfile", "PWD", "keyword"):
        assert not is_secret_name(name), name
    argv = ["serve", "m", "--hf-token", HF, "--api-key=sk-abcdef", "--port", "8000",
            "--enable-auth", "--token", "ab"]
    assert secret_values(argv, {"HF_TOKEN": "tok123456", "PATH": "/usr/bin"}) == \
        [HF, "sk-abcdef", "tok123456"]  # "ab": too short to mask everywhere; names still do


# --- secrets in a sweep: files, engine log, stderr ----------------------------------------------

def _engine_script(tmp_path: Path) -> str:
    """A fake engine that, like vLLM, prints the arguments it got (secrets included)."""
    script = tmp_path / "echo_engine.py"
    script.write_text(textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import fake_engine
        args = sys.argv[1:]
        print("non-default args:", args, flush=True)
        print("hf_token=" + args[args.index("--hf-token") + 1], flush=True)
        drop = {{"--hf-token", "--api-key"}}
        keep = [a for i, a in enumerate(args) if a not in drop and
                (i == 0 or args[i - 1] not in drop)]
        sys.exit(fake_engine.main(keep))
        """))
    return str(script)


def _sweep_argv(tmp_path: Path, out: Path, *engine_flags: str) -> list[str]:
    from profiling.launcher import free_port
    command = f"{{python}} {_engine_script(tmp_path)} --port {{port}} --model {{model}}"
    return ["sweep", "--model", "fake-model", "--command", " ".join([command, *engine_flags]),
            "--extra-args", f"--hf-token {HF} --api-key {SK}", "--port", str(free_port()),
            "--loads", "20", "--out", str(out), "--gpu", "loopback", "--num-requests", "5",
            "--synthetic", "4", "--max-tokens", "3", "--startup-timeout-s", "30",
            "--no-progress"]


def _leaks(root: Path, text: str) -> list[str]:
    found = [str(p) for p in root.rglob("*") if p.is_file() and
             any(s in p.read_text(errors="replace") for s in (HF, SK))]
    return found + [f"<{w}>" for w, s in (("hf", HF), ("sk", SK)) if s in text]


def test_a_sweep_with_secret_engine_options_writes_them_nowhere(tmp_path, capsys):
    from profiling.__main__ import main
    out = tmp_path / "out"
    assert main(_sweep_argv(tmp_path, out)) == 0
    captured = capsys.readouterr()
    assert "1 profile rows" in captured.out
    logs = list(out.glob("points/*/*/engine-*.log"))
    assert logs and "non-default args" in logs[0].read_text()  # the engine did print them
    prov = pd.read_csv(out / "profile.csv")["provenance"].iloc[0]
    assert "--hf-token *** --api-key ***" in prov
    assert _leaks(out, captured.out + captured.err) == []


def test_an_engine_that_exits_shows_its_log_without_the_secrets(tmp_path, capsys):
    from profiling.__main__ import main
    out = tmp_path / "out"
    assert main(_sweep_argv(tmp_path, out, "--crash")) == 2
    err = capsys.readouterr().err
    assert "exited with code 3" in err and "out of memory (injected)" in err  # the log tail
    assert "--hf-token ***" in err and "non-default args" in err
    assert _leaks(out, err) == []


def test_step_tables_mask_the_command_and_child_errors(tmp_path):
    from profiling.gpu_steps import STEP_COLUMNS, write_steps
    row = {c: 1 for c in STEP_COLUMNS}
    row.update(command=f"python run.py --hf-token {HF}", error=f"child log: HF_TOKEN={SK}")
    write_steps(pd.DataFrame([row]), tmp_path / "steps.csv")
    text = (tmp_path / "steps.csv").read_text()
    assert HF not in text and SK not in text and "--hf-token ***" in text


# --- readers do not echo what they cannot parse ------------------------------------------------

def test_a_secrets_file_given_as_score_table_is_not_echoed(tmp_path):
    from routerwise.data.scores import load_score_table
    path = tmp_path / "secrets.env"
    path.write_text(f"OPENAI_API_KEY={SK}\nHF_TOKEN={HF}\n")
    with pytest.raises(DataError) as err:
        load_score_table(path)
    msg = str(err.value)
    assert SK not in msg and HF not in msg and "OPENAI_API_KEY" not in msg
    assert str(path) in msg and "['prompt_id', 'model', 'score']" in msg and "1 column" in msg
