"""What differs between runs: a word diff of prompts and one short label per run.

Shared by the widget's comparison grid and the exported comparison video, so both say the
same thing. Pure text work on the runs' stored params: no image is read.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from .inputs import FramepackInput
    from .runs import Run

__all__ = ["Fields", "diff_ops", "differences", "fields_of", "image_names", "labels_for", "word_diff"]

DiffOp = Literal["same", "added", "removed"]

_PUNCT = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def _norm(word: str) -> str:
    """Compare words without case or surrounding punctuation ("In," equals "in")."""
    stripped = _PUNCT.sub("", word.lower())
    return stripped or word.lower()


def word_diff(a: str, b: str) -> list[tuple[DiffOp, str]]:
    """How prompt `b` differs from prompt `a`, word by word, in reading order.

    Returns ``[(op, word), ...]`` with op ``"same"`` (in both; the word as written in `b`),
    ``"removed"`` (only in `a`) or ``"added"`` (only in `b`); a replaced stretch lists its
    removed words before its added ones. Case and surrounding punctuation are ignored
    when matching, so the widget can highlight real changes only.
    """
    words_a = (a or "").split()
    words_b = (b or "").split()
    matcher = difflib.SequenceMatcher(
        None, [_norm(w) for w in words_a], [_norm(w) for w in words_b], autojunk=False
    )
    out: list[tuple[DiffOp, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(("same", w) for w in words_b[j1:j2])
        else:
            out.extend(("removed", w) for w in words_a[i1:i2])
            out.extend(("added", w) for w in words_b[j1:j2])
    return out


def _common_mask(prompts: Sequence[str], index: int) -> list[bool]:
    """For each word of prompts[index]: is it matched in every other prompt?"""
    words = (prompts[index] or "").split()
    mask = [True] * len(words)
    for other_index, other in enumerate(prompts):
        if other_index == index:
            continue
        matcher = difflib.SequenceMatcher(
            None, [_norm(w) for w in (other or "").split()], [_norm(w) for w in words], autojunk=False
        )
        matched = [False] * len(words)
        for block in matcher.get_matching_blocks():
            for j in range(block.b, block.b + block.size):
                matched[j] = True
        mask = [m and k for m, k in zip(mask, matched)]
    return mask


def _distinct_phrases(prompts: Sequence[str], index: int) -> list[str]:
    """The stretches of prompts[index] that are not shared by all the other prompts."""
    words = (prompts[index] or "").split()
    mask = _common_mask(prompts, index)
    phrases: list[str] = []
    current: list[str] = []
    for word, common in zip(words, mask):
        if common:
            if current:
                phrases.append(" ".join(current))
                current = []
        else:
            current.append(word)
    if current:
        phrases.append(" ".join(current))
    return phrases


class Fields(NamedTuple):
    """What a comparison looks at in one run; images by content hash (or URL)."""

    prompt: str
    negative_prompt: str
    duration: int | None
    start_image: str | None
    end_image: str | None


def _image_key(info: Mapping[str, Any] | None) -> str | None:
    return (info.get("sha256") or info.get("url") or None) if info else None


def _params(item: "Run | FramepackInput") -> Mapping[str, Any]:
    from .inputs import FramepackInput

    return item.to_params() if isinstance(item, FramepackInput) else item.params


def image_names(items: Sequence["Run | FramepackInput"], key: str = "start_image") -> dict[str, str]:
    """What each image (by content hash or URL) is called among `items`: the name it was
    given ("lake_cabin.jpg") or the last part of its URL. Images without a name are left out."""
    names: dict[str, str] = {}
    for item in items:
        info = _params(item).get(key) or {}
        image = _image_key(info)
        url = str(info.get("url") or "")
        name = info.get("name") or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if image is not None and name and image not in names:
            names[image] = str(name)
    return names


def fields_of(item: "Run | FramepackInput") -> Fields:
    """The compared fields of a Run (from its params: no image is read) or of an input."""
    params = _params(item)
    return Fields(
        str(params.get("prompt") or ""),
        str(params.get("negative_prompt") or ""),
        params.get("duration"),
        _image_key(params.get("start_image")),
        _image_key(params.get("end_image")),
    )


def differences(items: Sequence["Run | FramepackInput"]) -> dict[str, bool]:
    """Which fields differ between the items (prompts compared without case or punctuation)."""
    fields = [fields_of(item) for item in items]
    return {
        "prompt": len({" ".join(_norm(w) for w in f.prompt.split()) for f in fields}) > 1,
        "negative_prompt": len({f.negative_prompt for f in fields}) > 1,
        "duration": len({f.duration for f in fields}) > 1,
        "start_image": len({f.start_image for f in fields}) > 1,
        "end_image": len({f.end_image for f in fields}) > 1,
    }


def diff_ops(base: str, other: str) -> list[list[str]]:
    """`word_diff` as the widget draws it: [[op, text], ...], op "=", "+" or "-", runs of
    the same op merged."""
    symbol = {"same": "=", "added": "+", "removed": "-"}
    ops: list[list[str]] = []
    for op, word in word_diff(base or "", other or ""):
        mark = symbol[op]
        if ops and ops[-1][0] == mark:
            ops[-1][1] += " " + word
        else:
            ops.append([mark, word])
    return ops


def labels_for(runs: Sequence["Run | FramepackInput"]) -> list[str]:
    """One short caption per run saying what sets it apart from the others.

    Prompts: the words of each prompt that are not common to all prompts (quoted; "(no
    extra words)" when a prompt is only the common part). Negative prompt, duration,
    start image and end image appear only when they differ between the runs; images are
    told apart by content hash and shown by name ("lake_cabin.jpg") when every one of them
    has a distinct name, else numbered in order of appearance ("start image 2"); an end
    image that is the run's own start image is "loop". Runs with identical settings
    (repeats) are labelled by their run number ("run #3"), or "take 1", "take 2", ...
    before they are stored. Accepts Run objects or FramepackInput objects.
    """
    fields = [fields_of(r) for r in runs]
    n = len(fields)
    if n == 0:
        return []
    prompts = [f[0] for f in fields]
    negatives = [f[1] for f in fields]
    durations = [f[2] for f in fields]
    starts = [f[3] for f in fields]
    ends = [f[4] for f in fields]

    def differs(values: Sequence[Any]) -> bool:
        return len(set(values)) > 1

    def numbering(values: Sequence[str | None]) -> dict[str | None, int]:
        order: dict[str | None, int] = {}
        for v in values:
            if v is not None and v not in order:
                order[v] = len(order) + 1
        return order

    def naming(values: Sequence[str | None], key: str, what: str) -> dict[str | None, str]:
        """Each image's name when all have distinct ones, else "start image 1", "start image 2", ..."""
        names = image_names(runs, key)
        shown = [v for v in dict.fromkeys(values) if v is not None]
        if all(v in names for v in shown) and len({names[v] for v in shown}) == len(shown):
            return {v: names[v] for v in shown}
        return {v: f"{what} {k}" for v, k in numbering(values).items()}

    def number(k: int) -> str:
        seq = getattr(runs[k], "seq", None)
        return f"run #{seq}" if isinstance(seq, int) else f"take {k + 1}"

    prompt_differs = len({" ".join(_norm(w) for w in p.split()) for p in prompts}) > 1
    start_names = naming(starts, "start_image", "start image")
    end_names = naming([None if e == s else e for e, s in zip(ends, starts)], "end_image", "end image")

    labels: list[str] = []
    for k in range(n):
        parts: list[str] = []
        if prompt_differs:
            phrases = _distinct_phrases(prompts, k)
            if phrases:
                parts.append(" … ".join(f"“{p}”" for p in phrases))
            elif prompts[k].strip():
                # Same words as the others but fewer or reordered: show the whole prompt.
                parts.append("(no extra words)" if n > 1 and _is_subset(prompts, k) else f"“{prompts[k]}”")
            else:
                parts.append("(empty prompt)")
        if differs(negatives):
            parts.append(f"not “{negatives[k]}”" if negatives[k] else "no negative prompt")
        if differs(durations):
            parts.append(f"{durations[k]} s")
        if differs(starts):
            parts.append(start_names.get(starts[k], "start image ?"))
        if differs(ends):
            if ends[k] is None:
                parts.append("no end image")
            else:
                parts.append("loop" if ends[k] == starts[k] else end_names[ends[k]])
        if not parts:
            parts.append(number(k) if n > 1 else (prompts[k] or "run"))
        labels.append(" · ".join(parts))
    # Identical labels would defeat the purpose: number them (by run number when stored).
    if len(set(labels)) < len(labels):
        seen: dict[str, int] = {}
        for k, label in enumerate(labels):
            if labels.count(label) > 1:
                seen[label] = seen.get(label, 0) + 1
                seq = getattr(runs[k], "seq", None)
                labels[k] = f"{label} · " + (f"run #{seq}" if isinstance(seq, int) else f"take {seen[label]}")
    return labels


def _is_subset(prompts: Sequence[str], index: int) -> bool:
    mine = {_norm(w) for w in prompts[index].split()}
    return all(mine <= {_norm(w) for w in p.split()} for p in prompts)
