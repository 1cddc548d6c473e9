"""Real OpenAI-compatible servers for the tests: ``transformers serve`` on 127.0.0.1, serving a
local model folder, started in its own process group and killed with it. Nothing is downloaded
(``HF_HUB_OFFLINE=1``: the model is a folder on disk)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: the simplest chat template: one ``role: content`` line per message, then ``assistant:``
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def save_chat_lm(out, texts, context: int = 4096) -> Path:
    """`conftest.save_tiny_lm` with a chat template on its tokenizer, a greedy ``generation_config``
    (``do_sample=False``), which a server needs to chat and decode greedily, and ``context``
    positions (its 512 rows of position embeddings tiled): a server does not cut long prompts (a
    judge's view of judged_qa is ~1000 of its tokens) as `LMAgent` does."""
    import torch
    from conftest import save_tiny_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    out = Path(save_tiny_lm(out, texts))
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    old = model.transformer.wpe.weight.detach()
    model.transformer.wpe = torch.nn.Embedding.from_pretrained(old[torch.arange(context) % len(old)].clone(), freeze=False)
    model.config.n_positions = context
    end = tokenizer.eos_token_id
    model.generation_config = GenerationConfig(do_sample=False, bos_token_id=end, eos_token_id=end, pad_token_id=end)
    model.save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``transformers serve MODEL --host 127.0.0.1 --port PORT`` until `stop`; ``url`` is its
    OpenAI base URL (``http://127.0.0.1:PORT/v1``), ``model`` the name it serves."""

    def __init__(self, model: str | os.PathLike, log: str | os.PathLike, port: int | None = None):
        self.model, self.port = str(model), port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = Path(log)
        self.proc: subprocess.Popen | None = None
        self.started_in: float | None = None

    def start(self, timeout: float = 60.0) -> Server:
        exe = Path(sys.executable).with_name("transformers")
        cmd = [str(exe), "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        t0 = time.monotonic()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll ``/v1/models`` until it answers and lists the model."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200 and self.model in json.dumps(json.load(r)):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"transformers serve not ready at {self.url} after {timeout} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Kill the server's whole process group (SIGKILL: as sudden as a crash) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
