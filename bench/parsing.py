"""Parsing speed figures (never a test): metric parsing of a 200k-line log, knob discovery on a 2,000-line file.

Usage: .venv/bin/python bench/parsing.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nightlab.agent.metrics import parse_loss_curve, parse_metric
from nightlab.agent.policy.knobs import discover


def timed(fn: object, n: int = 5) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    log = "\n".join(f"| step {i:6d} | train loss {2.0 / (1 + i / 1000):.4f} | {i / 100:.1f}s |"
                    for i in range(200_000)) + "\n| end of training | val_bpc 3.6581 |"
    print(f"parse_metric, 200k lines: {timed(lambda: parse_metric(log, 'val_bpc')) * 1000:.0f} ms")
    print(f"parse_metric with a regex, 200k lines: "
          f"{timed(lambda: parse_metric(log, 'val_bpc', r'val_bpc ([0-9.]+)')) * 1000:.0f} ms")
    print(f"parse_loss_curve, 200k lines: {timed(lambda: parse_loss_curve(log)) * 1000:.0f} ms")
    block = "\n".join(f"LR_{i} = 0.001\nCONFIG_{i} = {{'lr': 0.1, 'batch_size': 32, 'epochs': 10}}\n"
                      for i in range(500))
    n_lines = block.count("\n")
    secs = timed(lambda: discover(f"big{time.time()}.py", block))
    print(f"knob discovery, {n_lines}-line file: {secs * 1000:.0f} ms")


if __name__ == "__main__":
    main()
