"""Configuration: flags win over environment variables, which win over defaults."""

import argparse

from phi4_bridge.config import DEFAULT_SPACE_URL, BridgeConfig
from phi4_bridge.flags import add_arguments, config_from


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults(monkeypatch):
    for var in ("PHI4_SPACE", "PHI4_SPACE_URL", "PHI4_HUB_URL", "PHI4_TIMEOUT_IDLE"):
        monkeypatch.delenv(var, raising=False)
    cfg = config_from(parse([]))
    assert cfg.space == "microsoft/phi-4-multimodal" and cfg.space_url == DEFAULT_SPACE_URL
    assert cfg.timeouts.idle == 120.0


def test_environment_over_defaults_and_flags_over_environment(monkeypatch):
    monkeypatch.setenv("PHI4_SPACE_URL", "http://env.example/")
    monkeypatch.setenv("PHI4_HUB_URL", "http://hub.env")
    monkeypatch.setenv("PHI4_TIMEOUT_FIRST_EVENT", "2.5")
    cfg = config_from(parse(["--space-url", "http://flag.example"]))
    assert cfg.space_url == "http://flag.example"
    assert cfg.hub_url == "http://hub.env"
    assert cfg.timeouts.first_event == 2.5
    assert config_from(parse([])).space_url == "http://env.example", "trailing slash removed"


def test_tokens_are_not_in_the_repr():
    cfg = BridgeConfig(hf_token="hf_secretvalue123", zerogpu_token="eyJabc.def.ghi")
    assert "hf_secret" not in repr(cfg) and "eyJabc" not in repr(cfg)
