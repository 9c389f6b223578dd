"""Configuration: flags win over environment variables, which win over defaults."""

import argparse

import pytest

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


def test_the_api_flags_are_one_definition_with_each_sides_defaults(monkeypatch):
    """``--api-key``, ``--fetch-image-urls``, ``--concurrency``, ``--turns-per-client``: defined once
    (``phi4_bridge.openai_api.flags``) for ``serve`` and the app, the same defaults (32, 4); only the app's
    ``--turns-per-client`` reads ``PHI4_TURNS_PER_CLIENT``; both read ``PHI4_API_KEYS`` after the flags."""
    from mirror.settings import parse_settings
    from phi4_bridge.cli.main import build_parser
    from phi4_bridge.config import api_keys

    monkeypatch.setenv("PHI4_TURNS_PER_CLIENT", "7")
    monkeypatch.setenv("PHI4_API_KEYS", "k1, k2,k0")
    app = parse_settings(["--api-key", "k0", "--fetch-image-urls"])
    assert (app.concurrency_total, app.turns_per_client) == (32, 7)
    assert app.api_keys == ("k0", "k1", "k2") and app.fetch_image_urls
    assert parse_settings(["--turns-per-client", "2"]).turns_per_client == 2, "the flag wins over the environment"
    serve = build_parser().parse_args(["serve", "--api-key", "k0", "--fetch-image-urls"])
    assert (serve.concurrency, serve.turns_per_client) == (32, 4)
    assert api_keys(serve.api_key) == ("k0", "k1", "k2") and serve.fetch_image_urls
    monkeypatch.delenv("PHI4_TURNS_PER_CLIENT")
    monkeypatch.delenv("PHI4_API_KEYS")
    assert parse_settings([]).turns_per_client == 4 and parse_settings([]).api_keys == ()


@pytest.mark.parametrize("flag", ["--concurrency", "--turns-per-client"])
@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_serve_and_the_app_refuse_a_count_below_one_with_a_line_naming_the_flag(flag, value, capsys, monkeypatch):
    """0 turns at once would let no turn run: both command lines refuse it (and negatives, and words) at once, with
    argparse's usage and exit 2, instead of a server that answers nothing."""
    from mirror.settings import parse_settings
    from phi4_bridge.cli.main import build_parser

    monkeypatch.delenv("PHI4_TURNS_PER_CLIENT", raising=False)
    for parse in (lambda: build_parser().parse_args(["serve", flag, value]), lambda: parse_settings([flag, value])):
        with pytest.raises(SystemExit) as exited:
            parse()
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}:" in err and ("must be at least 1" in err or "not a whole number" in err), err


def test_the_apps_turns_per_client_from_the_environment_is_checked_too(capsys, monkeypatch):
    from mirror.settings import parse_settings

    monkeypatch.setenv("PHI4_TURNS_PER_CLIENT", "0")
    with pytest.raises(SystemExit):
        parse_settings([])
    assert "PHI4_TURNS_PER_CLIENT must be at least 1, not 0" in capsys.readouterr().err
