#!/usr/bin/env python3
"""The table of compare.sh: per model, each (format, method) of each tool with qforge eval's
KLD (± its standard error) / top-1 / PPL and the quantization's wall time, CPU time (user + system)
and peak RSS (/usr/bin/time -v); then, per (format, method), each peer's mean KLD against qforge's
as a paired difference with its standard error (both evaluated on the same windows of the same
text, so the per-window differences are what varies; windows are independent clusters, as in
qforge's eval/statistics.h).
Usage: compare_table.py WORK MODEL..."""
import json
import math
import pathlib
import re
import sys

ROWS = [("W4A16 GPTQ", "qforge-gptq", "qforge"), ("W4A16 GPTQ", "llmc-gptq", "llm-compressor"),
        ("W4A16 GPTQ", "gptqmodel-dense", "GPTQModel"), ("W4A16 AWQ", "qforge-awq", "qforge"),
        ("W4A16 AWQ", "qforge-awqgptq", "qforge (awq+gptq)"),
        ("W4A16 AWQ", "llmc-awq", "llm-compressor"),
        ("W8A8 SmoothQuant+GPTQ", "qforge-w8a8", "qforge"),
        ("W8A8 SmoothQuant+GPTQ", "llmc-w8a8", "llm-compressor")]


def timing(path):
    """(wall s, CPU s = user + system, MiB) from /usr/bin/time -v output, or None."""
    if not path.exists():
        return None
    t = path.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", t)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", t))
    h, m, s = wall.groups()
    return int(h or 0) * 3600 + int(m) * 60 + float(s), cpu, int(rss.group(1)) / 1024


def clustered_stderr(tokens, sums):
    """Standard error of sum(sums) / sum(tokens), the clusters independent (qforge's
    clustered_stderr in src/eval/statistics.cc: C / (C - 1) * sum ((s_c - n_c * mean) / N)^2)."""
    n, c = sum(tokens), len(tokens)
    if c < 2 or n == 0:
        return 0.0
    mean = sum(sums) / n
    return math.sqrt(c / (c - 1) * sum(((s - t * mean) / n) ** 2 for t, s in zip(tokens, sums)))


def paired(ours, peer):
    """(our mean KLD - the peer's, its standard error) on the same windows, or None."""
    if "window_kld_sums" not in peer or "window_kld_sums" not in ours:
        return None
    if peer["window_tokens"] != ours["window_tokens"]:
        return None  # not the same text and windows: no paired difference
    diff = [a - b for a, b in zip(ours["window_kld_sums"], peer["window_kld_sums"])]
    return ours["kld_mean"] - peer["kld_mean"], clustered_stderr(ours["window_tokens"], diff)


def load_eval(path):
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except json.JSONDecodeError:  # an evaluation still writing it
        return None


def print_paired(w):
    """Each qforge row of a (format, method) minus each peer's, with the SE of the difference."""
    rows = []
    for what in dict.fromkeys(r[0] for r in ROWS):
        evals = [(name, tool, load_eval(w / f"{name}.eval.json")) for wh, name, tool in ROWS if wh == what]
        for ours_name, _, ours in (r for r in evals if r[1].startswith("qforge") and r[2]):
            for _, peer_tool, peer in (r for r in evals if not r[1].startswith("qforge") and r[2]):
                d = paired(ours, peer)
                if d is None:
                    continue
                diff, se = d
                z = f"{diff / se:+.1f}" if se > 0 else "—"
                rows.append(f"| {what} | {ours_name} − {peer_tool} | {diff:+.6f} | {se:.6f} | {z} | "
                            f"{100 * diff / peer['kld_mean']:+.1f}% |")
    if rows:
        print("\n| format, method | paired difference | mean KLD difference | SE | in SEs | relative to the peer |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))


def main():
    work = pathlib.Path(sys.argv[1])
    for model in sys.argv[2:]:
        w = work / model
        print(f"\n#### {model}\n")
        print("| format, method | tool | mean KLD | top-1 | PPL (ref) | quantize wall s | CPU s | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|")
        for what, name, tool in ROWS:
            stem = "gptqmodel" if name == "gptqmodel-dense" else name
            t = timing(w / f"{stem}.time")
            ev = w / f"{name}.eval.json"
            if (w / f"{stem}.failed").exists():
                log = (w / f"{stem}.log").read_text().strip().splitlines()
                print(f"| {what} | {tool} | quantization failed: `{log[-1][:160] if log else '?'}` | | | | | |")
                continue
            if not ev.exists():
                err = w / f"{name}.eval.err"
                why = f"qforge eval refused: `{err.read_text().strip().splitlines()[-1][:160]}`" \
                    if err.exists() and err.read_text().strip() else "not run"
                print(f"| {what} | {tool} | {why} | | | | | |")
                continue
            try:
                e = json.loads(ev.read_text())
            except json.JSONDecodeError:  # an evaluation still writing it
                print(f"| {what} | {tool} | being evaluated | | | | | |")
                continue
            ts = f"{t[0]:.0f} | {t[1]:.0f} | {t[2]:.0f}" if t else " | | "
            se = f" ± {e['kld_mean_stderr']:.5f}" if "kld_mean_stderr" in e else ""
            print(f"| {what} | {tool} | {e['kld_mean']:.5f}{se} | {100 * e['top1_agreement']:.2f}% | "
                  f"{e['ppl']:.3f} ({e['ref_ppl']:.3f}) | {ts} |")
        print_paired(w)


if __name__ == "__main__":
    main()
