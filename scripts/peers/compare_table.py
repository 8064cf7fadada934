#!/usr/bin/env python3
"""The table of compare.sh: per model, each (format, method) of each tool with qforge eval's
KLD / top-1 / PPL and the quantization's wall time, CPU time (user + system) and peak RSS
(/usr/bin/time -v).
Usage: compare_table.py WORK MODEL..."""
import json
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
            print(f"| {what} | {tool} | {e['kld_mean']:.5f} | {100 * e['top1_agreement']:.2f}% | "
                  f"{e['ppl']:.3f} ({e['ref_ppl']:.3f}) | {ts} |")


if __name__ == "__main__":
    main()
