"""Per-round summary of easy_to_hard runs: python scripts/e2h_summary.py outputs/easy_to_hard [RUN...]
(trained length, longest length at >= 99%, kept fraction, label accuracy, cumulative wall time,
exact match per length)."""
import json, sys
for run in sys.argv[1:]:
    rows = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
    print(f"## {run}")
    by = {}
    for r in rows:
        by.setdefault(r["iteration"], {})[r["stage"]] = r
    t = 0.0
    for it in sorted(by):
        st = by[it]; t += sum(s.get("seconds", 0) for s in st.values())
        ev = st.get("evaluate_lengths", {}); sl = st.get("self_label", {})
        accs = " ".join(f"{k[10:]}:{100*v:.0f}" for k, v in ev.items() if k.startswith("accuracy_d"))
        print(f"round {it}: L={ev.get('trained_length')} longest99={ev.get('longest_at_target')} kept={sl.get('kept_fraction')} "
              f"label_acc={sl.get('label_accuracy')} label_acc_all={sl.get('label_accuracy_all')} wall={t:.0f}s | {accs}")
