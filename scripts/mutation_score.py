"""Summarise a `mutmut run` (make mutation): the score, and every mutant not killed.

The score counts killed and timed-out mutants against all mutants except the equivalent ones
listed in EQUIVALENT (each with the reason no test can tell it from the original), whatever
their verdict. Exits 1 below MINIMUM_SCORE, when a mutant survives that is not listed, or when
the list is out of date (a listed mutant killed, or no longer there). Mutant names follow the
source: after an edit of a mutated function, re-check the list (docs/testing.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MINIMUM_SCORE = 90.0

_CHUNK = "only the size of the chunks the same bytes stream in changes"
_REPLACED = "the initial table (and its room) is unused: _to_table builds the real one first"
_SAME_LENGTH = "zip's strict flag: the two arrays always have the same length"
_SAME_BISECT = "every entry before `start` is <= done < the target: same index"
_FIRST_LINE = "_first_line is set with the url, before any read"
_WHERE = (
    "the fast path drops a format's problem message (the line then goes the reference's way),"
    " and any place but chat's checks a format as /responses does: the same columns"
)
EQUIVALENT: dict[str, str] = {
    "batching.validation.fastpath.x__read_text__mutmut_8": _WHERE,
    "batching.validation.fastpath.x__read_text__mutmut_13": _WHERE,
    "batching.validation.fastpath.x__read_text__mutmut_14": _WHERE,
    "batching.validation.fastpath.xǁFileParserǁ_chat__mutmut_11": "a text-only body's pieces are all"
    " strings: _chat_parts returns them unchanged, with no image (one pass more)",
    "batching.validation.fastpath.xǁFileParserǁ_tools_seen__mutmut_8": "_raw_tools = None is as falsy"
    " as False: the same decoders are chosen",
    "batching.validation.fastpath.xǁFileParserǁ_add__mutmut_2": "`changed` is read for tools only,"
    " and _add is called for tools only when they are present",
    "batching.service.aoai.x_upload__mutmut_17": "the file part's content type: neither the service nor"
    " the emulator reads it (the purpose field and the bytes decide)",
    "batching.service.aoai.x_upload__mutmut_18": "as _17: the content type's case",
    "batching.service.aoai.x_create_batch__mutmut_1": "extra starts as None instead of {}: it is only"
    " sent as `extra or None`, and both are falsy",
    "batching.service.aoai.x_create_batch__mutmut_33": "typing.cast(None, x) is x at run time",
    "batching.service.aoai.x_create_batch__mutmut_37": "typing.cast(None, x) is x at run time",
    "batching.service.aoai.x_file_content__mutmut_2": _CHUNK,
    "batching.service.aoai.x_file_content__mutmut_4": _CHUNK,
    "batching.service.aoai.x_file_content__mutmut_5": _CHUNK,
    "batching.settings.x_boolean__mutmut_16": 'the "" case is unreachable: Setting.read turns a blank'
    " value into the default, and the one boolean setting defaults to 'false'",
    "batching.settings.xǁSettingsǁfrom_env__mutmut_6": "typing.cast(None, x) is x at run time",
    "batching.steps.results.x_is_success__mutmut_14": "a missing status as 1 instead of 0: both are"
    " outside 200..299",
    "batching.steps.cost.x_price_for__mutmut_9": "every match is the model or a dash-prefix of it, so"
    " matches are prefixes of each other: the longest is also the greatest string",
    "batching.steps.cost.x_price_for__mutmut_11": "as _9 (max without a key)",
    "batching.validation.plan.xǁSplitPlannerǁ__init____mutmut_10": "signed 64-bit cumulative bytes: equal"
    " below 2**63 bytes (8 EiB)",
    "batching.validation.plan.xǁSplitPlannerǁplan__mutmut_39": _SAME_BISECT,
    "batching.validation.plan.xǁSplitPlannerǁplan__mutmut_53": _SAME_BISECT,
    "batching.validation.idindex.xǁCustomIdIndexǁ_grow__mutmut_39": "capacity is a power of two >= 4, so"
    " capacity * 3 / 4 is exact and the room still counts down to 0",
    "batching.validation.idindex.xǁCustomIdIndexǁ__init____mutmut_2": _REPLACED,
    "batching.validation.idindex.xǁCustomIdIndexǁ__init____mutmut_5": _REPLACED,
    "batching.validation.idindex.xǁCustomIdIndexǁ__init____mutmut_6": _REPLACED,
    "batching.validation.idindex.xǁCustomIdIndexǁ__init____mutmut_9": _REPLACED,
    "batching.validation.idindex.xǁCustomIdIndexǁ__init____mutmut_10": _REPLACED,
    "batching.validation.idindex.xǁCustomIdIndexǁ__init____mutmut_11": _REPLACED,
    "batching.validation.idindex.xǁCustomIdIndexǁadd__mutmut_39": _SAME_LENGTH,
    "batching.validation.idindex.xǁCustomIdIndexǁadd__mutmut_42": _SAME_LENGTH,
    "batching.validation.idindex.xǁCustomIdIndexǁadd__mutmut_43": _SAME_LENGTH,
    "batching.validation.validator.x__not_json__mutmut_24": "a longer slice cannot change startswith() of"
    " prefixes of at most 9 bytes",
    "batching.validation.validator.x__not_json__mutmut_32": "orjson reports -Infinity at the I, after the"
    " minus: the '-Infinity' alternative never decides",
    "batching.validation.validator.x__not_json__mutmut_33": "as _32",
    "batching.validation.validator.x__not_json__mutmut_34": "as _32",
    "batching.validation.validator.xǁLineCheckerǁ__init____mutmut_7": _FIRST_LINE,
    "batching.validation.validator.xǁLineCheckerǁ__init____mutmut_8": _FIRST_LINE,
    "batching.validation.validator.x__validate__mutmut_12": "last_columns is only compared by identity"
    " with a tuple, and tested for truth: None and '' behave the same",
    "batching.validation.validator.x__validate__mutmut_88": "the empty_file count is only ever set here,"
    " once: = 1 and += 1 agree",
}
KILLED = ("killed", "timeout")


def main() -> int:
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    listing = subprocess.run(  # noqa: S603
        [mutmut, "results", "--all", "true"], check=True, capture_output=True, text=True
    )
    status: dict[str, str] = {}
    for row in listing.stdout.splitlines():
        name, _, verdict = row.strip().partition(": ")
        if verdict:
            status[name] = verdict
    # A listed mutant is left out whatever its verdict: a timeout there is the machine's load.
    equivalent = {n for n in status if n in EQUIVALENT}
    counted = {n: v for n, v in status.items() if n not in equivalent and v != "skipped"}
    killed = sum(v in KILLED for v in counted.values())
    timed_out = sum(v == "timeout" for v in counted.values())
    score = 100.0 * killed / len(counted) if counted else 0.0
    print(f"mutants: {len(status)}, killed: {killed - timed_out}, timed out: {timed_out}")
    print(f"equivalent (listed in scripts/mutation_score.py): {len(equivalent)}")
    problems = 0
    for name, verdict in sorted(counted.items()):
        if verdict not in KILLED:
            print(f"  not killed, not listed: {name} ({verdict})")
            problems += 1
    for name in sorted(n for n in equivalent if status[n] == "killed"):
        print(f"  listed as equivalent but killed (the list is out of date): {name}")
        problems += 1
    for name in sorted(set(EQUIVALENT) - set(status)):
        print(f"  listed as equivalent but no such mutant (the list is out of date): {name}")
        problems += 1
    print(f"mutation score: {score:.1f} % ({killed} of {len(counted)})")
    return 0 if score >= MINIMUM_SCORE and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
