"""Which examples a split expression selects, by TFDS's own parsing, checked; no TensorFlow.

``split`` is what ``tfds.load`` takes: a string such as "train[:90%]" or "train+test[:100]", or a
``tfds.core.ReadInstruction``. TFDS parses and rounds it (``builder.info.splits[split]``); this
module only turns TFDS's errors into ones that name the problem, and refuses a part that selects
no examples (TFDS counts a backwards slice, "train[5:3]", as -2 examples).
"""

from __future__ import annotations

import re
from typing import TypeAlias

import tensorflow_datasets as tfds

SplitArg: TypeAlias = "str | tfds.core.ReadInstruction"
_EXAMPLES = "'train[:90%]', 'train[90%:]', 'train[:1000]' or 'train+test'"


def split_info(builder: tfds.core.DatasetBuilder, split: SplitArg):
    """TFDS's (Sub)SplitInfo of ``split``: its example count and file instructions.

    Raises:
      TypeError: ``split`` is neither a string nor a ``tfds.core.ReadInstruction``.
      ValueError: an unknown split name, a malformed or out-of-range slice (TFDS's own words), or a
        part that selects no examples.
    """
    if not isinstance(split, (str, tfds.core.splits.AbstractSplit)):
        raise TypeError(f"split must be a string such as 'train' or 'train[:90%]', or a "
                        f"tfds.core.ReadInstruction, got {split!r}")
    splits = builder.info.splits
    name = builder.info.full_name
    try:
        parts = tfds.core.splits.AbstractSplit.from_spec(split).to_absolute(dict(splits))
    except (KeyError, ValueError, AssertionError) as exc:
        if "Unknown split" in str(exc) or isinstance(exc, KeyError):
            raise ValueError(
                f"split={split!r} is not a split of {name}: use "
                f"{' or '.join(repr(known) for known in splits)}, optionally sliced or combined "
                f"as in {_EXAMPLES}") from exc
        problem = str(exc).split("\n")[-1].strip() or type(exc).__name__
        raise ValueError(f"split={split!r} is not a slice {name} can read: {problem} (slices "
                         f"look like {_EXAMPLES})") from exc
    # A string's parts as written ("train[5:3]"), else as TFDS resolved them.
    texts = re.split(r"\s*\+\s*", split.strip()) if isinstance(split, str) else []
    if len(texts) != len(parts):  # a ReadInstruction, or "all"
        texts = [None] * len(parts)
    for part, text in zip(parts, texts):
        start = part.from_ or 0
        stop = splits[part.splitname].num_examples if part.to is None else part.to
        if stop <= start:
            raise ValueError(
                f"split={split!r}: {text or f'{part.splitname}[{start}:{stop}]'!r} selects no "
                f"examples of {name}; a slice must select at least one example and run forwards, "
                f"as in {_EXAMPLES}")
    return splits[split]


def split_names(builder: tfds.core.DatasetBuilder, split: SplitArg) -> set[str]:
    """The names of the splits ``split`` draws on: {"train"} for "train[90%:]"."""
    parts = tfds.core.splits.AbstractSplit.from_spec(split).to_absolute(dict(builder.info.splits))
    return {part.splitname for part in parts}
