"""Preprocessing throughput and peak memory at 1×, 4× and 16× the reference trajectories.

    python benchmarks/prepro.py [--reference ../shared/reference] [--base 8] [--num-proc 1]

The 15 raw answers of ``toolbench_data_example`` are replicated (symlinks, new query ids) ``base × k``
times. Each size runs in a fresh process; we print trajectories/s and peak RSS, for our streaming
pipeline and for an in-memory baseline shaped like the original (load every trajectory, then dump).
Goal: our peak RSS stays flat (≤ 1.5×) from 4× to 16×.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

OURS = """
import resource, sys
from glpft import prepro
s = prepro.run(sys.argv[2], data_dir=sys.argv[1], exclude_test_ids=False, num_proc=int(sys.argv[3]), progress=False)
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(s.kept, max(self_kb, child_kb))
"""

# The original's shape: every trajectory loaded into one list, then one json.dump (stage 1 only).
BASELINE = """
import json, os, resource, sys
from glpft import prepro
data = []
for path in prepro.list_answer_files(sys.argv[1]):
    with open(path) as f:
        d = json.load(f)
    if "train_messages" in d.get("answer_generation", {}):
        data.append(prepro.stage1_from_answer(d, path))
os.makedirs(sys.argv[2], exist_ok=True)
with open(os.path.join(sys.argv[2], "raw_data_stage_1.json"), "w") as f:
    json.dump(data, f, indent=2)
print(len(data), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def replicate(src: Path, dst: Path, copies: int) -> int:
    files = sorted(src.glob("answer/*/*.json"))
    for k in range(copies):
        for f in files:
            group = dst / "answer" / f.parent.name
            group.mkdir(parents=True, exist_ok=True)
            qid, rest = f.name.split("_", 1)
            (group / f"{k}{qid.zfill(6)}_{rest}").symlink_to(f)
    return copies * len(files)


def measure(code: str, data: Path, out: Path, num_proc: int) -> tuple[int, float, float]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", code, str(data), str(out), str(num_proc)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    kept, rss_kb = map(int, res.stdout.split()[-2:])
    return kept, wall, rss_kb / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=str(REPO.parent / "shared" / "reference"))
    ap.add_argument("--base", type=int, default=8, help="copies of the 15 answers at 1×")
    ap.add_argument("--num-proc", type=int, default=1)
    args = ap.parse_args()
    src = Path(args.reference) / "toolbench_data_example"
    if not src.is_dir():
        sys.exit(f"reference data not found at {src}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 4, 16):
            data = Path(tmp) / f"data{scale}"
            n = replicate(src, data, args.base * scale)
            kept, wall, rss = measure(OURS, data, Path(tmp) / f"out{scale}", args.num_proc)
            _, bwall, brss = measure(BASELINE, data, Path(tmp) / f"base{scale}", 1)
            rows.append((scale, n, kept, n / wall, rss, n / bwall, brss))
            for p in Path(tmp).glob(f"*{scale}/**/*.json"):
                if not p.is_symlink():
                    p.unlink()
    print(
        f"{'size':>5} {'files':>6} {'kept':>6} {'traj/s':>8} {'peak MB':>8} | {'in-memory traj/s':>16} {'peak MB':>8}"
    )
    for scale, n, kept, tps, rss, btps, brss in rows:
        print(f"{scale:>4}× {n:>6} {kept:>6} {tps:>8.1f} {rss:>8.1f} | {btps:>16.1f} {brss:>8.1f}")
    ours_ratio = rows[2][4] / rows[1][4]
    base_ratio = rows[2][6] / rows[1][6]
    print(f"peak RSS 16×/4×: streaming {ours_ratio:.2f}× (goal ≤ 1.5×), in-memory baseline {base_ratio:.2f}×")
    print(
        json.dumps(
            {
                "rss_ratio_16x_over_4x": round(ours_ratio, 3),
                "baseline_rss_ratio_16x_over_4x": round(base_ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
