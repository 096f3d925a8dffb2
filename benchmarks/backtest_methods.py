"""Before/after: the threat estimators against the baselines, by real backtests on reporting seeds.

For each network (the demo's Helsinki walk network; downtown Aguascalientes, drive, when
``../shared/data`` holds it) and each reporting seed (2001, 2002, ...: not the tuning seeds of
``benchmarks/tune_threat.py``), a year of weekly synthetic history
(:func:`havenmap.synthetic.synthetic_history`: persistent, emerging and fading hotspots with
repeat sites, plus background) and 100 defenders are backtested with
:func:`havenmap.backtest.backtest` from week 12 to week 50 (39 weekly as-of dates, 7-day
horizon, alert distance 400 m), once with ``method="kde"`` (before) and once with
``method="mix"`` (after). A third run scores ``last_counts`` over 365 days instead of 56 —
the best counts window in hindsight — as a robustness check.

Printed: per network, the mean over seeds of each method's pooled scores, and per seed the
ratio of havenmap's PAI at 5 % to the best baseline's with its paired bootstrap interval.

Run: ``python benchmarks/backtest_methods.py [--seeds 5] [--workers 2]``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from havenmap.backtest import METHODS, backtest
from havenmap.network import load_network
from havenmap.scenario import demo_dir
from havenmap.synthetic import synthetic_defenders, synthetic_history

REPO = Path(__file__).resolve().parents[1]
METRICS = ("pai_1", "pai_5", "pai_10", "hit_rate_5", "precision", "recall", "lead_time_days", "onset_recall")


def networks() -> dict:
    nets = {"Helsinki walk": load_network(demo_dir() / "helsinki.osm.pbf", "walk")}
    agu = REPO.parent / "shared" / "data" / "aguascalientes.osm.bz2"
    if agu.exists():
        nets["Aguascalientes drive"] = load_network(agu, "drive")
    return nets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="reporting seeds per network (2001, 2002, ...)")
    ap.add_argument("--workers", type=int, default=2, help="local Dask worker processes (0: serial)")
    args = ap.parse_args()
    client = None
    if args.workers:
        from distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None))
    rows, ratios = [], []
    t0 = time.perf_counter()
    for name, net in networks().items():
        for seed in range(2001, 2001 + args.seeds):
            hist = synthetic_history(net, seed=seed)
            d = synthetic_defenders(net, 100, seed=seed, near=hist.hotspots["node"].to_numpy())
            start = hist.start + pd.Timedelta(days=7 * 12 - 1)
            end = hist.start + pd.Timedelta(days=7 * 51 - 1)
            kw = {"workers": args.workers, "scheduler": client, "distance_m": 400.0}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                before = backtest(net, hist.incidents, d, start, end, method="kde", **kw)
                after = backtest(net, hist.incidents, d, start, end, method="mix", **kw)
                long_counts = backtest(net, hist.incidents, None, start, end, counts_days=365, bootstrap=0, **kw)
            labelled = {
                "havenmap kde (before)": before.summary["havenmap"],
                "havenmap mix (after)": after.summary["havenmap"],
            }
            labelled.update({m: after.summary[m] for m in METHODS[1:]})
            labelled["last_counts 365 d"] = long_counts.summary["last_counts"]
            for label, entry in labelled.items():
                rows.append({"network": name, "seed": seed, "method": label, **{m: entry.get(m) for m in METRICS}})
            for label, res in (("before", before), ("after", after)):
                cmp = res.comparison["pai_5"]
                vs_long = res.summary["havenmap"]["pai_5"] / long_counts.summary["last_counts"]["pai_5"]
                ratios.append(
                    {
                        "network": name,
                        "seed": seed,
                        "estimator": label,
                        "best": res.comparison["best_baseline"],
                        "ratio": cmp["ratio"],
                        "ci": cmp.get("ratio_ci"),
                        "vs 365 d counts": vs_long,
                    }
                )
            print(f"{name} seed {seed} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    order = ["havenmap kde (before)", "havenmap mix (after)", *METHODS[1:], "last_counts 365 d"]
    pd.set_option("display.width", 200)
    for name, part in table.groupby("network", sort=False):
        mean = part.groupby("method")[list(METRICS)].mean().reindex(order)
        print(f"\n{name}: mean over {args.seeds} seeds of the pooled scores (39 weekly as-of dates each)")
        print(mean.round(3).to_string())
    r = pd.DataFrame(ratios)
    print("\nhavenmap PAI at 5 % / best baseline's (paired bootstrap 95 % interval), per seed:")
    for _, x in r.iterrows():
        ci = "" if not x["ci"] else f" ({x['ci'][0]:.2f}-{x['ci'][1]:.2f})"
        print(
            f"  {x['network']:22} {x['seed']} {x['estimator']:6} vs {x['best']:11}: {x['ratio']:.3f}{ci}; "
            f"vs 365-day counts {x['vs 365 d counts']:.3f}"
        )
    summary = r.groupby("estimator")[["ratio", "vs 365 d counts"]].agg(["mean", "min"])
    print("\n" + summary.round(3).to_string())
    if client is not None:
        client.close()


if __name__ == "__main__":
    main()
