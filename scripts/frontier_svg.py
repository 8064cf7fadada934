#!/usr/bin/env python3
"""Draws docs/frontier.svg from scripts/plan_sweep.py results: measured KLD (log scale) against
bits per weight, one panel per model; planned mixes as a line, uniform formats as labelled
squares, the planner's predicted KLD as open circles. A small SVG writer, no dependencies.

  scripts/frontier_svg.py -o docs/frontier.svg NAME=OUT/results.json [NAME=OUT2/results.json]

Kinds drawn: plan, uniform (GPTQ), uniform-rtn (plan_sweep.py --rtn), llamacpp (a llama.cpp preset
measured by `qforge eval --ref` like the others, as a result with that kind). The PNG:
rsvg-convert -o docs/frontier.png docs/frontier.svg (Debian librsvg2-bin).
"""
import argparse
import json
import math

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 460, 340, 62, 16, 34, 46


def panel(name, results, x0):
    xs = [r["bpw"] for r in results]
    ys = [v for r in results for v in (r["kld_mean"], r["predicted_kld"]) if v > 0]
    xmin, xmax = math.floor(min(xs)), math.ceil(max(xs))
    ymin, ymax = 10 ** math.floor(math.log10(min(ys))), 10 ** math.ceil(math.log10(max(ys)))

    def px(x):
        return x0 + PAD_L + (x - xmin) / (xmax - xmin) * (W - PAD_L - PAD_R)

    def py(y):
        t = (math.log10(y) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin))
        return PAD_T + (1 - t) * (H - PAD_T - PAD_B)

    out = [f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-weight="bold">{name}</text>']
    out.append(f'<rect x="{x0 + PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" '
               f'height="{H - PAD_T - PAD_B}" fill="none" stroke="#444"/>')
    for x in range(xmin, xmax + 1):
        out.append(f'<line x1="{px(x)}" y1="{PAD_T}" x2="{px(x)}" y2="{H - PAD_B}" stroke="#ddd"/>')
        out.append(f'<text x="{px(x)}" y="{H - PAD_B + 16}" text-anchor="middle">{x}</text>')
    e = int(math.log10(ymin))
    while 10 ** e <= ymax * 1.0001:
        out.append(f'<line x1="{x0 + PAD_L}" y1="{py(10 ** e)}" x2="{x0 + W - PAD_R}" '
                   f'y2="{py(10 ** e)}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 + PAD_L - 6}" y="{py(10 ** e) + 4}" text-anchor="end">1e{e}</text>')
        e += 1
    out.append(f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle">bits per weight '
               '(linears, embedding, head; scales included)</text>')
    out.append(f'<text x="{x0 + 14}" y="{H / 2}" text-anchor="middle" '
               f'transform="rotate(-90 {x0 + 14} {H / 2})">mean KLD to the original</text>')
    plans = sorted((r for r in results if r["kind"] == "plan"), key=lambda r: r["bpw"])
    pts = " ".join(f"{px(r['bpw']):.1f},{py(r['kld_mean']):.1f}" for r in plans)
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for r in plans:
        out.append(f'<circle cx="{px(r["bpw"]):.1f}" cy="{py(r["kld_mean"]):.1f}" r="3.5" '
                   'fill="#1f77b4"/>')
        if r["predicted_kld"] > 0:
            out.append(f'<circle cx="{px(r["bpw"]):.1f}" cy="{py(r["predicted_kld"]):.1f}" r="3.5" '
                       'fill="none" stroke="#ff7f0e"/>')
    last_x, below = None, False  # a label close to the previous one goes on the other side
    for r in sorted((r for r in results if r["kind"] == "uniform"), key=lambda r: r["bpw"]):
        x, y = px(r["bpw"]), py(r["kld_mean"])
        below = last_x is not None and x - last_x < 50 and not below
        last_x = x
        out.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="#d62728"/>')
        out.append(f'<text x="{x + 6:.1f}" y="{y + 14 if below else y - 6:.1f}" '
                   f'font-size="10">{r["label"]}</text>')
    for r in (r for r in results if r["kind"] == "uniform-rtn"):
        x, y = px(r["bpw"]), py(r["kld_mean"])
        out.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="none" '
                   'stroke="#d62728"/>')
    for r in (r for r in results if r["kind"] == "llamacpp"):
        x, y = px(r["bpw"]), py(r["kld_mean"])
        out.append(f'<path d="M{x:.1f},{y - 5:.1f} L{x + 5:.1f},{y + 4:.1f} L{x - 5:.1f},{y + 4:.1f} Z" '
                   'fill="#2ca02c"/>')
        out.append(f'<text x="{x + 6:.1f}" y="{y + 12:.1f}" font-size="10">{r["label"]}</text>')
    ly = PAD_T + 14
    kinds = {r["kind"] for r in results}
    legend = [("#1f77b4", "dot", "planned mix (measured)"),
              ("#ff7f0e", "ring", "planned mix (predicted)"),
              ("#d62728", "square", "uniform format, GPTQ (measured)")]
    if "uniform-rtn" in kinds:
        legend.append(("#d62728", "open square", "uniform format, RTN (measured)"))
    if "llamacpp" in kinds:
        legend.append(("#2ca02c", "triangle", "llama.cpp preset (measured)"))
    for color, shape, text in legend:
        lx = x0 + W - PAD_R - 190
        if shape == "square":
            out.append(f'<rect x="{lx - 4}" y="{ly - 8}" width="8" height="8" fill="{color}"/>')
        elif shape == "open square":
            out.append(f'<rect x="{lx - 4}" y="{ly - 8}" width="8" height="8" fill="none" '
                       f'stroke="{color}"/>')
        elif shape == "triangle":
            out.append(f'<path d="M{lx},{ly - 9} L{lx + 5},{ly} L{lx - 5},{ly} Z" fill="{color}"/>')
        else:
            fill = color if shape == "dot" else "none"
            out.append(f'<circle cx="{lx}" cy="{ly - 4}" r="3.5" fill="{fill}" stroke="{color}"/>')
        out.append(f'<text x="{lx + 10}" y="{ly}" font-size="11">{text}</text>')
        ly += 15
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("runs", nargs="+", help="NAME=results.json")
    a = ap.parse_args()
    body = []
    for i, run in enumerate(a.runs):
        name, path = run.split("=", 1)
        body += panel(name, json.load(open(path))["results"], i * W)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W * len(a.runs)}" height="{H}" '
           'font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n'
           + "\n".join(body) + "\n</svg>\n")
    open(a.output, "w").write(svg)


if __name__ == "__main__":
    main()
