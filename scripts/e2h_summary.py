"""Per-round summary of easy_to_hard runs, and one markdown table comparing them.

    python scripts/e2h_summary.py outputs/easy_to_hard [RUN...]
    python scripts/e2h_summary.py --paired A_SEED0,A_SEED1,A_SEED2 B_SEED0,B_SEED1,B_SEED2

Per run and round: trained length L, the longest length at >= 99%, kept fraction, label accuracy
of the kept labels (and of all labels, before the filters), stage seconds so far, exact match per
evaluated length. Then a table, one row per run: the best exact match any round reached at each
length from start+2 to start+8, the kept labels' accuracy in rounds 1-4, and the run's stage
seconds. Gold answers enter these numbers only as monitors (the runs never trained on them).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from selfimprove.analysis import e2h  # noqa: E402


if __name__ == "__main__":
    try:
        if sys.argv[1:2] == ["--paired"] and len(sys.argv) == 4:
            e2h.paired([Path(x) for x in sys.argv[2].split(",")], [Path(x) for x in sys.argv[3].split(",")])
        else:
            e2h.table([Path(a) for a in sys.argv[1:]])
    except ValueError as exc:
        sys.exit(f"e2h_summary: error: {exc}")
