"""``scripts/pip_install.py``: pip's configuration handed to uv, or pip alone when uv could not honour it.

Why these matter: README's test command installs through it, so a wrong mapping would install from somewhere pip
would not (a missing index or constraint), and a setting uv cannot take must leave the install to pip.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pip_install.py"


@pytest.fixture(scope="module")
def pip_install() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pip_install", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_index_find_links_and_constraint_reaches_uv(pip_install: ModuleType):
    flags = pip_install.uv_flags({
        "index-url": "https://mirror.example/simple",
        "extra-index-url": "file:///opt/a/simple file:///opt/b/simple",
        "find-links": "/opt/wheels",
        "constraint": "/etc/c.txt",
        "trusted-host": "mirror.example",
        "cert": "/etc/ssl/certs/ca-certificates.crt",
        "default-timeout": "180",
    })
    assert flags is not None
    lone = {"--compile-bytecode", "--no-index"}
    pairs, rest = [], iter(flags)
    for flag in rest:
        pairs.append((flag, "") if flag in lone else (flag, next(rest)))
    assert ("--default-index", "https://mirror.example/simple") in pairs
    assert [v for k, v in pairs if k == "--extra-index-url"] == ["file:///opt/a/simple", "file:///opt/b/simple"]
    assert ("--find-links", "/opt/wheels") in pairs
    assert ("--constraint", "/etc/c.txt") in pairs
    assert ("--allow-insecure-host", "mirror.example") in pairs
    # like pip: the best version across every index, and .pyc files written as pip writes them
    assert ("--index-strategy", "unsafe-best-match") in pairs
    assert ("--compile-bytecode", "") in pairs


@pytest.mark.parametrize("setting", ["proxy", "client-cert", "index", "prefer-binary", "pre"])
def test_a_setting_uv_is_not_given_leaves_the_install_to_pip(pip_install: ModuleType, setting: str):
    assert pip_install.uv_flags({"find-links": "/opt/wheels", setting: "x"}) is None


def test_no_index_is_kept(pip_install: ModuleType):
    assert "--no-index" in pip_install.uv_flags({"no-index": "true"})
    assert "--no-index" not in pip_install.uv_flags({"no-index": "false"})


def test_pip_settings_read_the_environment_over_the_files(pip_install: ModuleType, monkeypatch, tmp_path: Path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nfind-links = /from/file\nextra-index-url = file:///x/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_FIND_LINKS", "/from/env")
    settings = pip_install.pip_settings()
    assert settings["find-links"] == "/from/env"
    assert settings["extra-index-url"] == "file:///x/simple"


def test_outside_a_venv_pip_installs(pip_install: ModuleType, monkeypatch):
    """uv would need ``--system`` there; that choice stays pip's."""
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    ran: list[list[str]] = []
    monkeypatch.setattr(pip_install.subprocess, "run",
                        lambda cmd, **_: ran.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert pip_install.main(["-r", "requirements.txt"]) == 0
    assert len(ran) == 1 and ran[0][1:4] == ["-m", "pip", "install"]
