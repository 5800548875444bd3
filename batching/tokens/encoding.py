"""The token encodings, built offline from the data files that bpe-openai ships.

tiktoken would download them on first use, which fails without internet (and in locked-down
Azure networks); the same files ship inside the bpe-openai wheel, checked against tiktoken's
published hashes. Apart from the estimator so the counting child process can load it alone;
what only building an encoding needs is imported when one is built (`batchctl validate` builds
none unless asked to count tokens).
"""

from __future__ import annotations

import _thread
import re
from dataclasses import dataclass
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: batchctl start-up
if TYPE_CHECKING:
    import tiktoken


_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
    r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


@dataclass(frozen=True)
class _EncodingSpec:
    sha256: str
    pattern: str
    special_tokens: dict[str, int]


# Patterns, special tokens and hashes as in tiktoken_ext.openai_public (tiktoken 0.14).
_SPECS = {
    "o200k_base": _EncodingSpec(
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _EncodingSpec(
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

# Deployment names are free text; most embed the model name. First match wins; order matters
# (gpt-4o and gpt-4.1 before gpt-4).
_FAMILIES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (family, re.compile(pattern), encoding)
    for family, pattern, encoding in (
        ("gpt-4o", r"gpt-?4o|(?<![0-9])4o", "o200k_base"),
        ("gpt-4.1", r"gpt-?4\.1", "o200k_base"),
        ("gpt-5", r"gpt-?5", "o200k_base"),
        ("o-series", r"(?<![a-z0-9])o[1-9](?![0-9])", "o200k_base"),
        ("gpt-oss", r"gpt-?oss", "o200k_base"),
        ("gpt-4", r"gpt-?4", "cl100k_base"),
        ("gpt-3.5", r"gpt-?3\.?5", "cl100k_base"),
    )
)
UNKNOWN_FAMILY = ("unknown", "o200k_base")


def model_family(deployment: str) -> tuple[str, str]:
    """(family, encoding name) guessed from a deployment name; unknown names get o200k_base."""
    name = deployment.lower()
    for family, pattern, encoding in _FAMILIES:
        if pattern.search(name):
            return family, encoding
    return UNKNOWN_FAMILY


def _data_file(name: str) -> Path:
    """The rank file inside the installed bpe-openai package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("bpe-openai is not installed: it ships the token encodings")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"


_LOADED: dict[str, tiktoken.Encoding] = {}
# Activities run on a pool of threads: a burst of runs asks at once, and each build is a
# quarter of a second of CPU (and the encoding's memory) that one build can serve. (`_thread`,
# built in, not `threading`: `batchctl validate` imports this module and never a thread.)
_BUILDING = _thread.allocate_lock()


def encoding_loaded(name: str) -> bool:
    """Whether this process has built the encoding already (then counting here is free)."""
    return name in _LOADED


def get_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding, built from local data once per process; nothing is downloaded."""
    if name not in _LOADED:
        with _BUILDING:
            if name not in _LOADED:
                _LOADED[name] = _build_encoding(name)
    return _LOADED[name]


def _build_encoding(name: str) -> tiktoken.Encoding:
    import gzip
    import hashlib
    from binascii import a2b_base64

    import tiktoken  # not needed by a process that leaves counting to a ChildCounter

    spec = _SPECS[name]
    data = gzip.decompress(_data_file(name).read_bytes())
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise RuntimeError(f"{_data_file(name)} is not the published {name} rank file")
    # "<base64 token> <rank>" per line; the published files list ranks 0, 1, 2 ... in order
    tokens = data.split()[0::2]
    ranks = dict(zip(map(a2b_base64, tokens), range(len(tokens)), strict=True))
    return tiktoken.Encoding(
        name,
        pat_str=spec.pattern,
        mergeable_ranks=ranks,
        special_tokens=spec.special_tokens,
    )
