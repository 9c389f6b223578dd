"""Bad input is refused on this machine, before any byte of the turn leaves it, with a message that names the
problem (and the file). "Before it leaves" is checked at the wire: the bridge talks to the stand-in through
a TCP proxy that records every request line, and the stand-in's own upload and call counters do not move.
"""

from __future__ import annotations

import asyncio
import os
import resource
import struct
import zlib
from pathlib import Path

import pytest
from media_factory import jpeg, png, wav
from tcp_proxy import TcpProxy

from phi4_bridge import BridgeConfig, InputRejected, Phi4Bridge, UploadRejected
from phi4_standin.launcher import stats
from phi4_standin.process import ServerProcess

GUARD_S = 10.0


@pytest.fixture(scope="module")
def proxy(standin: ServerProcess):
    with TcpProxy(standin.port) as p:
        yield p


@pytest.fixture
def bridge_cfg(standin_clean: ServerProcess, proxy: TcpProxy) -> BridgeConfig:
    proxy.reset()
    return BridgeConfig(space_url=proxy.url, hub_url=proxy.url)


def vm_hwm_kb() -> int:
    """Peak resident memory of this process so far (kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny compressed row of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


async def refused(cfg: BridgeConfig, standin: ServerProcess, proxy: TcpProxy, prompt: str,
                  files: list[Path] = (), kind: type[InputRejected] = UploadRejected) -> InputRejected:
    """Run the turn on a fresh bridge; it must raise ``kind`` (UploadRejected for a file, the plain InputRejected
    for the message itself) with nothing sent anywhere."""
    before_stats, before_requests = stats(standin.url), len(proxy.requests)
    async with Phi4Bridge(cfg) as bridge:
        with pytest.raises(InputRejected) as info:
            await asyncio.wait_for(bridge.chat(prompt, list(files)), GUARD_S)
    assert type(info.value) is kind, f"{type(info.value).__name__}: {info.value}"
    after = stats(standin.url)
    assert proxy.requests[before_requests:] == [], "the bridge sent requests for a turn it should refuse"
    assert after["uploads"] == before_stats["uploads"] and after["calls"] == before_stats["calls"]
    text = str(info.value)
    assert text and "\n" not in text and "Traceback" not in text and len(text) < 400
    return info.value


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,reason,words", [
    (lambda d: write(d / "empty.png", b""), "empty", ("empty",)),
    (lambda d: write(d / "cut.png", png(d / "full.png", 300, 200).read_bytes()[:150]),
     "damaged", ("damaged", "truncated")),
    (lambda d: write(d / "liar.png", jpeg(d / "real.jpg").read_bytes()),
     "extension_mismatch", ("PNG", "JPEG")),
    (lambda d: write(d / "wav.jpg", wav(d / "real.wav").read_bytes()),
     "extension_mismatch", ("JPEG", "WAV")),
    (lambda d: write(d / "notes.png", b"%PDF-1.7 not an image at all"),
     "unsupported", ("not an image",)),
    (lambda d: png_header_only(d / "bomb.png", 100_000, 100_000), "too_many_pixels", ("too large",)),
    (lambda d: png_header_only(d / "huge.png", 8000, 6000), "too_many_pixels", ("8000x6000", "40,000,000")),
], ids=["zero_bytes", "truncated_png", "jpeg_named_png", "wav_named_jpg", "pdf_named_png", "bomb_100000x100000",
        "over_pixel_limit"])
async def test_bad_file_is_refused_before_upload(bridge_cfg, standin_clean, proxy, tmp_path, make, reason, words):
    bad = make(tmp_path)
    hwm = vm_hwm_kb()
    error = await refused(bridge_cfg, standin_clean, proxy, "look at this", [bad])
    assert error.reason == reason, str(error)
    assert bad.name in str(error), "the message names the file"
    for word in words:
        assert word.lower() in str(error).lower(), f"{word!r} not in {str(error)!r}"
    assert vm_hwm_kb() - hwm < 64 * 1024, "checking the file took a lot of memory"


async def test_file_over_the_size_limit_is_refused_without_reading_it(bridge_cfg, standin_clean, proxy, tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    os.truncate(big, 2 * 1024**3)  # sparse: 2 GB that take no disk and must not be read
    hwm = vm_hwm_kb()
    error = await refused(bridge_cfg, standin_clean, proxy, "listen", [big])
    assert error.reason == "too_large" and "big.wav" in str(error) and "MB" in str(error)
    assert vm_hwm_kb() - hwm < 64 * 1024, "peak memory grew while refusing a 2 GB file"
    # (how long the refusal takes is measured in the benchmarks, not asserted here)


async def test_image_over_its_own_size_limit(bridge_cfg, standin_clean, proxy, tmp_path):
    """11 MB is under the audio cap but over the 10 MB image cap."""
    image = png(tmp_path / "large.png", 20, 20)
    os.truncate(image, 11 * 1024 * 1024)  # trailing zeros after IEND; still a readable PNG
    error = await refused(bridge_cfg, standin_clean, proxy, "look", [image])
    assert error.reason == "too_large" and "image" in str(error) and "large.png" in str(error)


async def test_too_many_files(bridge_cfg, standin_clean, proxy, tmp_path):
    files = [png(tmp_path / f"p{n}.png", 5 + n, 5) for n in range(9)]
    error = await refused(bridge_cfg, standin_clean, proxy, "nine pictures", files)
    assert error.reason == "too_many_files" and "9 files" in str(error) and "8" in str(error)


async def test_missing_file(bridge_cfg, standin_clean, proxy, tmp_path):
    error = await refused(bridge_cfg, standin_clean, proxy, "look", [tmp_path / "nowhere.png"])
    assert error.reason == "unreadable" and "nowhere.png" in str(error)


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t \r\n"])
async def test_empty_turn(bridge_cfg, standin_clean, proxy, prompt):
    error = await refused(bridge_cfg, standin_clean, proxy, prompt, kind=InputRejected)
    assert error.reason == "empty" and "message" in str(error).lower()


async def test_very_long_prompt(bridge_cfg, standin_clean, proxy):
    error = await refused(bridge_cfg, standin_clean, proxy, "x" * 20_001, kind=InputRejected)
    assert error.reason == "too_long" and "20,001" in str(error) and "20,000" in str(error)


async def test_prompt_at_the_limit_goes_through(bridge_cfg, standin_clean):
    async with Phi4Bridge(bridge_cfg) as bridge:
        reply = await asyncio.wait_for(bridge.chat("y" * 20_000), GUARD_S)
    assert "yyyy" in reply


@pytest.mark.parametrize("prompt", ["nul\x00byte", "escape \x1b[31mred", "bell\x07", "del\x7f", "rlo \u202egnp.exe",
                                    "\x9bcsi", "zero\u200bwidth"],
                         ids=["nul", "ansi_escape", "bell", "del", "bidi_override", "c1_csi", "zero_width_space"])
async def test_control_characters(bridge_cfg, standin_clean, proxy, prompt):
    error = await refused(bridge_cfg, standin_clean, proxy, prompt, kind=InputRejected)
    assert error.reason == "control_characters" and "control characters" in str(error)


async def test_newlines_tabs_and_other_scripts_are_fine(bridge_cfg, standin_clean):
    prompt = "line one\nline two\ttab — «Grüße» 猫 🐈 مرحبا"
    async with Phi4Bridge(bridge_cfg) as bridge:
        reply = await asyncio.wait_for(bridge.chat(prompt), GUARD_S)
    assert prompt in reply


@pytest.mark.parametrize("name,expected", [
    ("..\\..\\etc\\passwd.png", "passwd.png"),
    ("..\\..\\..\\windows\\win.ini.png", "win.ini.png"),
    ("...hidden.png", "hidden.png"),
    ("\x1b[2Jclear\r.png", "[2Jclear.png"),
    ("a" * 300 + ".png", "a" * 116 + ".png"),  # 120 characters, the extension kept
], ids=["backslash_traversal", "windows_traversal", "leading_dots", "control_chars", "overlong"])
async def test_file_names_reach_the_space_as_base_names(bridge_cfg, standin_clean, tmp_path, name, expected):
    """The name the Space sees (FileData ``orig_name`` and the multipart filename it stored) has no folders."""
    folder = tmp_path / "sub"
    folder.mkdir()
    try:
        path = png(folder / (name[:246] + name[-4:] if len(name) > 250 else name), 31, 17)  # keep its ".png"
    except OSError:  # a name this filesystem refuses cannot reach the bridge either
        pytest.skip(f"filesystem refuses the name {name!r}")
    via_dots = folder / ".." / "sub" / path.name  # and a local path with '..' parts in it
    async with Phi4Bridge(bridge_cfg) as bridge:
        conv = bridge.conversation()
        reply = await asyncio.wait_for(bridge.chat("which file?", [via_dots], conversation=conv), GUARD_S)
        [data] = conv.uploaded.values()
    assert "PNG, 31x17" in reply
    orig = data["orig_name"]
    assert "/" not in orig and "\\" not in orig and not orig.startswith(".") and orig.isprintable()
    assert len(orig) <= 120
    if expected:
        assert orig == expected
    server = data["path"]
    assert ".." not in Path(server).parts and os.path.basename(server) == os.path.basename(server).lstrip(".")
    assert "\\" not in server and "etc/passwd" not in server
