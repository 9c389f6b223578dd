"""Issue 14: the repository runs as a Hugging Face Space as it is. The README's front matter says how the Hub
starts it (``sdk: gradio``, ``app_file: app.py``); this test starts ``python app.py`` with no arguments and the
environment a Space gives it (gradio's source reads ``SYSTEM=spaces``, ``SPACE_ID``, ``SPACE_HOST``,
``SPACE_AUTHOR_NAME``, ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``), and checks that it serves where the Space
says and that a visitor's ``x-ip-token`` (which the Hub adds to each visitor's requests) goes to the Phi-4 Space
alone, so the visitor's own ZeroGPU quota is used, never the host's token.

The Phi-4 Space is the stand-in, reached through a capturing TCP proxy (``PHI4_SPACE_URL``/``PHI4_HUB_URL``, the
Space's variables settings)."""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import yaml
from gradio_client import Client
from tcp_proxy import TcpProxy
from test_promises import anonymous_token, join_of, request_heads

from phi4_standin.launcher import reset
from phi4_standin.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must open with the Space's front matter"
    return yaml.safe_load(match.group(1))


def test_the_readme_front_matter_makes_the_repository_a_gradio_space() -> None:
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    pinned = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert str(meta["sdk_version"]) == pinned, "the Space must run the gradio the app is tested with"
    assert (ROOT / meta["app_file"]).is_file()


def test_started_as_a_space_it_serves_on_the_spaces_port_and_uses_each_visitors_ip_token(
        standin: ServerProcess, tmp_path: Path) -> None:
    reset(standin.url)
    port = free_port()
    with TcpProxy(standin.port, capture=True) as proxy:
        env = {"SYSTEM": "spaces", "SPACE_ID": "someone/phi4-mirror", "SPACE_AUTHOR_NAME": "someone",
               "SPACE_REPO_NAME": "phi4-mirror", "SPACE_TITLE": "Phi-4 Mirror",
               "SPACE_HOST": "someone-phi4-mirror.hf.space", "GRADIO_SERVER_NAME": "0.0.0.0",
               "GRADIO_SERVER_PORT": str(port), "PHI4_SPACE_URL": proxy.url, "PHI4_HUB_URL": proxy.url,
               "HOME": str(tmp_path), "PHI4_USAGE_DB": str(tmp_path / "usage.sqlite3")}
        with ServerProcess("space-app", [sys.executable, "app.py"], port, env=env, cwd=ROOT) as app:
            app.wait_ready("/", 120)
            # served on every interface as the Space asks (GRADIO_SERVER_NAME=0.0.0.0): 127.0.0.2 is loopback too,
            # and answers only when the app did not bind 127.0.0.1 alone
            with socket.create_connection(("127.0.0.2", port), timeout=10):
                pass
            token = anonymous_token(standin.url)  # a token the (stand-in) ZeroGPU issued, as the Hub's would be
            visitor = Client(f"http://127.0.0.1:{port}/", headers={"x-ip-token": token}, verbose=False)
            proxy.captured.clear()
            reply = visitor.predict({"text": "from a Space visitor", "files": []}, api_name="/chat")
            assert reply.startswith('You said: "from a Space visitor".')
            join = join_of(request_heads(proxy))
            assert f"x-ip-token: {token.lower()}" in join
            assert "x-zerogpu-token" not in join, "the host's token went along with the visitor's"
            # a visitor without one (not through the Hub): the host's (here anonymous) token, never another's
            proxy.captured.clear()
            assert Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
                {"text": "no token", "files": []}, api_name="/chat").startswith('You said: "no token".')
            join = join_of(request_heads(proxy))
            assert "x-ip-token" not in join and "x-zerogpu-token: " in join
            log = app.log_text()
            assert token not in log, "a visitor's token must never reach the log"
