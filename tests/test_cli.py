"""``python -m phi4_bridge chat`` as a person runs it: the reply on stdout, one clear line on failure."""

from __future__ import annotations

import subprocess
import sys

from forkserver import run_command
from media_factory import png

from phi4_standin.launcher import set_fault


def run_cli(standin, *args: str) -> subprocess.CompletedProcess[str]:
    return run_command([sys.executable, "-m", "phi4_bridge", "chat", *args, "--space-url", standin.url,
                        "--hub-url", standin.hub_url], timeout=60)


def test_chat_with_an_image_prints_the_reply(standin_clean, tmp_path):
    done = run_cli(standin_clean, "Describe this", "--image", str(png(tmp_path / "cat.png")))
    assert done.returncode == 0, done.stderr
    assert 'You said: "Describe this".' in done.stdout and "PNG, 37x23" in done.stdout
    assert "Traceback" not in done.stderr


def test_failure_is_one_line_and_non_zero(standin_clean):
    set_fault(standin_clean.url, "quota")
    try:
        done = run_cli(standin_clean, "hi")
    finally:
        set_fault(standin_clean.url, None)
    assert done.returncode == 4
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "quota" in lines[0].lower()


def test_bad_file_exits_2_without_traceback(standin_clean, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    done = run_cli(standin_clean, "hi", "--image", str(bad))
    assert done.returncode == 2 and "notes.png" in done.stderr and "Traceback" not in done.stderr


def test_unreachable_space_exits_3():
    done = run_command([sys.executable, "-m", "phi4_bridge", "chat", "hi", "--space-url", "http://127.0.0.1:9",
                        "--hub-url", "http://127.0.0.1:9"], timeout=60)
    assert done.returncode == 3 and "Cannot reach the Space" in done.stderr


def test_a_chat_does_not_load_the_api_servers_web_stack():
    """fastapi and uvicorn were half of the CLI's start-up (about 0.5 s of 1 s) and only ``serve`` needs them."""
    code = ("import sys, runpy; sys.argv = ['phi4_bridge', 'chat', '--help']\n"
            "try: runpy.run_module('phi4_bridge', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
