"""Reading finished runs back and comparing them: what `selfimprove compare` and `ls` print and
what the scripts under scripts/ (results pages, reports) aggregate. Modules, lowest first:

    stats      the one t-interval over seeds, Wilson over problems, paired tests, Holm
    runs       a run directory read back (metrics, config, status, seed model, FLOPs so far)
    table      compare's rows for runs shown one by one, and their file formats
    groups     which runs are one experiment (same config but the seed); mean ± interval per group
    paired     two groups on the same problems, problem by problem and by seed model
    budget     accuracy at equal compute, read off each run's accuracy-vs-FLOPs curve
    view       numbers for people: terminal tables, markdown
    plots      curves and heatmaps
    results    the results page (docs/results.md) from a sweep of finished runs
    results_plan  which recipes, seeds and sweeps scripts/results.py runs for that page
    matched    runs matched on training FLOPs (scripts/compare_grpo.py)
    e2h        easy-to-hard rounds and lengths (scripts/e2h_summary.py)
    run_report one run's accuracy with intervals over problems, tokens/s (scripts/run_report.py)

Nothing here imports torch.
"""
