"""H.264 in MP4, as much as joining videos by stream copy needs, and no more.

- The parameter sets of an MP4's `avcC` record (the stream's SPS/PPS) and their ids.
- Packets as an encoder gives them (Annex B: start codes) rewritten as MP4 stores them
  (each NAL unit after its length), and the parameter sets among them.
- x264's own settings: x264 writes them as text into the first frame of every stream it
  makes ("x264 - core ... - options: cabac=1 ref=1 ..."). Read back, they give the x264
  options of an encoder whose SPS/PPS are the stream's own, so frames it encodes can sit
  between copied ones under the stream's one `avcC`.

Everything here works on bytes already in memory and reads no length it has not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = [
    "NAL_PPS",
    "NAL_SEI",
    "NAL_SPS",
    "ParameterSets",
    "avcc_parameter_sets",
    "annexb_units",
    "length_prefixed",
    "prefixed_units",
    "unit_type",
    "x264_settings",
    "x264_options_for_headers",
]

NAL_SEI, NAL_SPS, NAL_PPS = 6, 7, 8
#: The longest x264 settings text read (x264 writes about 700 characters).
_MAX_SETTINGS_TEXT = 8192


class ParameterSets:
    """An avcC record's SPS and PPS units (without length prefixes) and NAL length size."""

    def __init__(self, sps: list[bytes], pps: list[bytes], length_size: int) -> None:
        self.sps, self.pps, self.length_size = sps, pps, length_size

    def ids(self) -> set[int]:
        """The SPS and PPS ids in use (an encoder giving its own sets must avoid them)."""
        found = {_first_ue(unit[4:]) for unit in self.sps} | {_first_ue(unit[1:]) for unit in self.pps}
        return {i for i in found if i is not None}

    def same_as(self, units: Iterable[bytes]) -> bool:
        """Whether `units` hold exactly these parameter sets (and no others)."""
        given = [u for u in units if unit_type(u) in (NAL_SPS, NAL_PPS)]
        return sorted(given) == sorted(self.sps + self.pps)


def avcc_parameter_sets(extradata: bytes | None) -> ParameterSets | None:
    """The parameter sets of an `avcC` record (ISO 14496-15), or None when it is not one."""
    data = bytes(extradata or b"")
    if len(data) < 7 or data[0] != 1:
        return None
    length_size = (data[4] & 0x03) + 1
    at = 5
    found: list[list[bytes]] = []
    for mask in (0x1F, 0xFF):  # SPS count is 5 bits, PPS count 8 bits
        if at >= len(data):
            return None
        count, at = data[at] & mask, at + 1
        units = []
        for _ in range(count):
            if at + 2 > len(data):
                return None
            size = int.from_bytes(data[at : at + 2], "big")
            if size == 0 or at + 2 + size > len(data):
                return None
            units.append(data[at + 2 : at + 2 + size])
            at += 2 + size
        found.append(units)
    sps, pps = found
    if not sps or not pps or any(unit_type(u) != NAL_SPS for u in sps) or any(unit_type(u) != NAL_PPS for u in pps):
        return None
    return ParameterSets(sps, pps, length_size)


_START = re.compile(b"\x00\x00\x01")


def annexb_units(data: bytes) -> list[bytes]:
    """The NAL units of Annex B bytes (start-code separated). A unit never holds 00 00 01
    (emulation prevention), so splitting there is exact; trailing zero bytes go."""
    starts = [m.end() for m in _START.finditer(data)]
    units = []
    for k, begin in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        unit = data[begin:end].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def length_prefixed(units: Iterable[bytes], length_size: int = 4) -> bytes:
    """NAL units as MP4 samples store them: each after its big-endian length."""
    limit = 1 << (8 * length_size)
    out = bytearray()
    for unit in units:
        if len(unit) >= limit:
            raise ValueError(f"a NAL unit of {len(unit)} bytes does not fit a {length_size}-byte length")
        out += len(unit).to_bytes(length_size, "big") + unit
    return bytes(out)


def prefixed_units(data: bytes, length_size: int) -> list[bytes]:
    """The NAL units of an MP4 sample (length-prefixed); stops at a length that overruns."""
    units, at = [], 0
    while at + length_size <= len(data):
        size = int.from_bytes(data[at : at + length_size], "big")
        at += length_size
        if size == 0 or at + size > len(data):
            break
        units.append(data[at : at + size])
        at += size
    return units


def unit_type(unit: bytes) -> int:
    return unit[0] & 0x1F if unit else -1


def x264_settings(sample: bytes, length_size: int) -> dict[str, str] | None:
    """x264's settings from the first sample of a stream it encoded, or None (another
    encoder, or a stream cut after its first frame)."""
    for unit in prefixed_units(sample, length_size):
        if unit_type(unit) != NAL_SEI:
            continue
        at = unit.find(b"x264 - core")
        if at < 0:
            continue
        text = unit[at : at + _MAX_SETTINGS_TEXT].split(b"\x00", 1)[0].decode("ascii", "replace")
        _, found, options = text.partition(" - options: ")
        if not found:
            return None
        pairs = (item.partition("=") for item in options.split())
        return {key: value for key, eq, value in pairs if eq and key}
    return None


#: x264's settings text -> its option names, where they differ only in spelling.
_SAME = {
    "cabac": "cabac", "ref": "ref", "8x8dct": "8x8dct", "bframes": "bframes", "b_pyramid": "b-pyramid",
    "weightb": "weightb", "weightp": "weightp", "open_gop": "open-gop", "constrained_intra": "constrained-intra",
    "bluray_compat": "bluray-compat", "chroma_qp_offset": "chroma-qp-offset", "b_bias": "b-bias",
    "qcomp": "qcomp", "ip_ratio": "ipratio", "pb_ratio": "pbratio", "qpmin": "qpmin", "qpmax": "qpmax",
    "stitchable": "stitchable",
}
_DIRECT = ("none", "spatial", "temporal", "auto")
#: Settings that change the SPS/PPS in ways an encoder cannot be told to repeat here.
_UNSUPPORTED = {"interlaced": "0", "cqm": "0", "intra_refresh": "0", "fake_interlaced": "0"}


def x264_options_for_headers(settings: Mapping[str, str]) -> dict[str, str] | None:
    """x264 options (for `x264-params`) whose SPS/PPS match the stream `settings` came
    from, with the fastest choices where headers do not depend on them, or None when the
    settings cannot be repeated (a custom quantiser matrix, interlacing, intra refresh, an
    average-bitrate stream). The caller checks the headers it gets all the same.

    The settings come from a downloaded file: only numbers pass into the options (a value
    such as "1:dump-yuv=/some/file" would otherwise add an option of its own)."""
    if any(settings.get(key, default) != default for key, default in _UNSUPPORTED.items()):
        return None
    options = {name: settings[key] for key, name in _SAME.items() if _number(settings.get(key))}
    rc = settings.get("rc", "crf")
    if rc == "crf" and _number(settings.get("crf")):
        options["crf"] = settings["crf"]
    elif rc == "cqp" and _number(settings.get("qp")):
        options["qp"] = settings["qp"]
    else:
        return None
    deblock = settings.get("deblock", "1:0:0").split(":")
    if len(deblock) == 3 and deblock[0] == "1" and all(map(_number, deblock)):
        options["deblock"] = f"{deblock[1]},{deblock[2]}"
    else:
        options["no-deblock"] = "1"
    direct = settings.get("direct", "1")
    if direct.isdigit() and int(direct) < len(_DIRECT):
        options["direct"] = _DIRECT[int(direct)]
    aq = settings.get("aq", "0").split(":")
    if 1 <= len(aq) <= 2 and all(map(_number, aq)):
        options["aq-mode"] = aq[0]
        options.update({"aq-strength": aq[1]} if len(aq) == 2 else {})
    # Headers do not depend on these: the fast end of each. psy=0 also keeps x264 from
    # moving chroma_qp_offset again (the settings text holds the value already moved).
    options.update({"psy": "0", "subme": "1", "me": "dia", "trellis": "0", "mbtree": "0", "scenecut": "0",
                    "b-adapt": "0", "rc-lookahead": "0", "no-mixed-refs": "1", "partitions": "i8x8,i4x4",
                    "keyint": "infinite", "min-keyint": "1"})
    return options


_NUMBER = re.compile(r"-?[0-9]{1,6}(\.[0-9]{1,6})?")


def _number(value: object) -> bool:
    return isinstance(value, str) and _NUMBER.fullmatch(value) is not None


def _first_ue(data: bytes) -> int | None:
    """The first unsigned Exp-Golomb number of an RBSP (an SPS/PPS id), or None."""
    bits = "".join(f"{b:08b}" for b in data[:8].replace(b"\x00\x00\x03", b"\x00\x00"))
    zeros = len(bits) - len(bits.lstrip("0"))
    if zeros >= len(bits) // 2:
        return None
    return int(bits[zeros : 2 * zeros + 1], 2) - 1
