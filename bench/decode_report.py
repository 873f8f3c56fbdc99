"""The markdown report of bench.decode (bench/results/decode.md) from its measured rows."""
from __future__ import annotations

import math

from bench.clocks import clock_of, cpu_is_work


def table(rows: list[dict]) -> str:
    lines = ["| row | work per run | GPU ms (timer, median) | wall ms (median) | first run ms | "
             "rate by timer | rate by wall |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        flag = "" if r["timer_covers_work"] else " (timer misses the work)"
        lines.append(f"| {r['name']} | {r['work']} | {r['gpu_ms']:.2f}{flag} | {r['wall_ms']:.2f} "
                     f"| {r['first_run_ms']:.0f} | {r['rate_gpu']:.3f} {r['unit']} | "
                     f"{r['rate_wall']:.3f} {r['unit']} |")
    return "\n".join(lines)


def sample_table(rows: list[dict], base: dict, load: dict, macs: int, key: str,
                 cpu: bool) -> str:
    """Filters against the baseline and the latent filter on `key`'s clock, and with `cpu` also
    by the process's CPU time."""
    latent = next((r for r in rows if r["filter"] == "latent"), None)
    head = ["filter", "MLP evals / pixel", "shader MACs / pixel", "frame ms", "x baseline frame",
            "x latent frame", "x latent expected (MLP evals)", "M MLP evals/s"]
    if cpu:
        head += ["CPU ms", "x baseline by CPU", "x latent by CPU", "M MLP evals/s by CPU"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

    def ratios(r, k):
        n = r["mlp_evals_per_pixel"]
        rel = f"{r[k] / latent[k]:.2f}" if latent else "-"
        return [f"{r[k] / base[k]:.1f}", rel, f"{r['items'] * n / r[k] / 1e3:.3f}"]

    for r in rows:
        n = r["mlp_evals_per_pixel"]
        exp = f"{n / latent['mlp_evals_per_pixel']:.0f}" if latent else "-"
        a, b, c = ratios(r, key)
        cells = [r["filter"], str(n), f"{n * macs:,}", f"{r[key]:.0f}", a, b, exp, c]
        if cpu:
            cells += [f"{r['cpu_ms']:.0f}", *ratios(r, "cpu_ms")]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["(load mode, for reference)", "1 per texel", f"{macs:,} per texel", "-", "-", "-",
             "-", f"{load['items'] / load[key] / 1e3:.3f}"]
    if cpu:
        cells += [f"{load['cpu_ms']:.0f}", "-", "-", f"{load['items'] / load['cpu_ms'] / 1e3:.3f}"]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sample_findings(out: dict, sample: list[dict], base: dict, load: dict, key: str,
                    clock: str) -> list[str]:
    """What the sample rows imply, stated only as far as the figures of this run go. On a
    software renderer the filter-to-filter conclusions rest on CPU time (the work itself; the
    wall clock of single frames moves with other load on the machine), and every ratio is given
    both ways."""
    macs = out["macs_per_texel"]["shader"]
    w, h = out["screen"]
    by = {r["filter"]: r for r in sample}
    if "latent" not in by:
        return []
    cpu = cpu_is_work(out["device"])
    # the clock the filter-to-filter conclusions use
    fkey, fclock = ("cpu_ms", "CPU time") if cpu else (key, clock)
    lat = by["latent"]
    x = lat[key] / base[key]
    x_cpu = lat["cpu_ms"] / base["cpu_ms"]
    both = f"{x:.0f}x by {clock}" + (f", {x_cpu:.0f}x by CPU time" if cpu else "")
    lines = [f"- Latent filter (one MLP evaluation a pixel) against the plain texture() frame of "
             f"the same view at {w}x{h}: {both} ({lat[key]:.0f} ms against {base[key]:.1f} ms by "
             f"{clock}" + (f", {lat['cpu_ms']:.0f} against {base['cpu_ms']:.1f} ms of CPU"
                          if cpu else "") + ")."]
    checks = []
    for name in ("stochastic", "trilinear"):
        if name in by:
            want = out["sample_evals"][name] / out["sample_evals"]["latent"]
            checks.append((by[name][fkey] / lat[fkey], want))
            got = f"{by[name][key] / lat[key]:.2f}x by {clock}"
            if cpu:
                got += f", {by[name]['cpu_ms'] / lat['cpu_ms']:.2f}x by CPU time"
            lines.append(f"- {name.capitalize()} / latent: {got}; {want:.0f}x expected from MLP "
                         f"evaluations per pixel ({out['sample_evals'][name]} against "
                         f"{out['sample_evals']['latent']}).")

    def rates(k):
        out_ = {r["filter"]: r["items"] * r["mlp_evals_per_pixel"] / r[k] / 1e3 for r in sample}
        out_["load mode"] = load["items"] / load[k] / 1e3
        return out_

    fr = rates(fkey)
    lo, hi = min(fr.values()), max(fr.values())
    follows = bool(checks) and hi / lo <= 1.25 and \
        all(abs(got / want - 1) <= 0.25 for got, want in checks)
    listed = ", ".join(f"{k} {v:.3f}" for k, v in fr.items())
    if follows:
        lines.append(
            f"- Frame time follows ntcDecode calls (MLP evaluations) per pixel: by {fclock}, per "
            f"evaluation the rows run at {listed} M/s, within {100 * (hi / lo - 1):.0f} % of each "
            f"other ({2 * macs * lo / 1e3:.1f}-{2 * macs * hi / 1e3:.1f} GFLOP/s of MLP). On this "
            f"device ntcDecode (latent fetches + MLP) is nearly all of a pixel's cost; the LOD, "
            f"hash and footprint around it are not"
            + (f" (stochastic adds the hash and footprint to latent's work and costs "
               f"{by['stochastic'][fkey] / lat[fkey]:.2f}x latent)" if "stochastic" in by else "")
            + ".")
    else:
        lines.append(f"- Frame time does not follow MLP evaluations alone here: by {fclock}, per "
                     f"evaluation the rows run at {listed} M/s.")
    if cpu and fkey != key:
        share = sum(r["cpu_ms"] for r in sample) / sum(r[key] for r in sample)
        wr = rates(key)
        lines.append(
            f"- By {clock} the same rates spread over {min(wr.values()):.3f}-"
            f"{max(wr.values()):.3f} M/s: over the sample frames the process had "
            f"{100 * share:.0f} % of a core (CPU time / {clock})"
            + (", other load on the machine took the rest" if share < 0.95 else "")
            + f"; each filter is {'one frame' if lat['repeats'] == 1 else 'a few frames'}, so "
            f"ratios between filters by {clock} carry that frame's share of the other load.")
    gmac = w * h * macs / 1e9
    lines.append(
        f"- The arithmetic, the same on any device: a {w}x{h} latent or stochastic frame is "
        f"{gmac:.3g} G MACs ({2 * gmac:.3g} GFLOP) of MLP, trilinear "
        f"{out['sample_evals']['trilinear'] * gmac:.3g} G MACs; the baseline's {out['textures']} "
        f"texture() calls a pixel do none.")
    dev = out["device"].split(" (")[0]
    worst = min(x, x_cpu) if cpu else x
    verdict = "meets it" if max(x, x_cpu if cpu else x) <= 2 else \
        f"misses it by {worst / 2:.0f}x or more"
    at = "" if [w, h] == [1920, 1080] else f"; measured at {w}x{h}, not 1080p"
    lines.append(
        f"- GPU target latent <= 2x plain sampling at 1080p: {dev} {verdict} ({both}{at}). "
        f"This run cannot confirm or refute the target on a GPU: here texture filtering and the "
        f"MLP's arithmetic both run as CPU code, on a GPU filtering is fixed-function hardware "
        f"and the arithmetic runs on the shader cores, so the balance between the two rows is a "
        f"different one; it needs these rows measured on the GPU (the bench runs unchanged on "
        f"any GL 4.5 EGL context).")
    if follows and "trilinear" in by and "stochastic" in by:
        tri = by["trilinear"][fkey] / lat[fkey]
        sto = by["stochastic"][fkey] / lat[fkey]
        n = out["sample_evals"]["trilinear"]
        lines.append(
            f"- What the ratios between filters say for the target: trilinear runs ntcDecode "
            f"(latent fetches + MLP) {n} times a pixel, latent and stochastic once, and here that "
            f"made trilinear {tri:.1f}x and stochastic {sto:.2f}x a latent frame (by {fclock}). "
            f"On a device where ntcDecode is likewise most of a latent frame, a latent frame at "
            f"exactly 2x plain sampling puts stochastic near {2 * sto:.0f}x and trilinear near "
            f"{2 * min(tri, n):.0f}-{2 * max(tri, n):.0f}x: stochastic fits latent's budget, "
            f"trilinear does not.")
    return lines


def report(out: dict) -> str:
    m, load, base = out["macs_per_texel"], out["rows"][0], out["rows"][1]
    sample = [r for r in out["rows"] if "filter" in r and r.get("precision", "fp32") == "fp32"]
    half = [r for r in out["rows"] if r.get("precision") == "fp16"]
    # one clock for both sides of a comparison: the timer where it covers every row's work
    key, clock = clock_of(out["rows"])
    texel_rate = load["items"] / load[key] / 1e3
    sample_repeats = sorted({r["repeats"] for r in sample})
    lines = [
        "# Decode throughput",
        "",
        f"Device: `{out['device']}` ({out['gl_version']}); LP_NUM_THREADS={out['lp_num_threads']}.",
        f"Set: {out['set']} ({out['width']}x{out['height']}, {out['mips']} mips, "
        f"{out['textures']} textures, {out['stored_channels']} stored channels); network "
        f"{out['network']}.",
        f"Decoder: the generated GLSL of the working tree ({out['decoder_glsl_vs_head']}; sha256 "
        + ", ".join(f"{n} {h}" for n, h in out["decoder_glsl"].items()) + ").",
        f"MLP per decoded texel: {m['file']:,} MACs as stored in the file "
        f"({2 * m['file']:,} FLOPs), {m['shader']:,} MACs as the shader runs them (widths padded "
        f"to vec4); layers (in, out) {m['layers']}.",
        f"Load mode and baseline: median of {out['repeats']} run{'s' if out['repeats'] > 1 else ''}"
        f" after a warm-up run (the first "
        f"run includes the driver's compile, unless Mesa's shader cache already holds the "
        f"program).",
    ]
    if sample:
        lines.append(
            f"Sample mode: {' / '.join(map(str, sample_repeats))} timed full-screen "
            f"frame{'s' if sample_repeats != [1] else ''} per filter (fewer than the other rows: "
            f"a frame takes seconds here), median, after a warm-up draw of "
            f"{out['sample_warmup'][0]}x{out['sample_warmup'][1]} pixels into the same framebuffer (its time is "
            f"the first-run column); same uv per pixel as the baseline ({out['texels_per_pixel']} "
            f"texels a pixel, lambda {math.log2(out['texels_per_pixel']):.2f}, repeat wrap), LOD from "
            f"ddx/ddy, all {out['stored_channels']} stored channels decoded per pixel.")
    lines += [
        "",
        table(out["rows"]),
        "",
        f"- Load mode ({clock}): {texel_rate:.3f} Mtexel/s, "
        f"{texel_rate * out['textures']:.3f} M output texels/s over {out['textures']} textures, "
        f"{2 * m['shader'] * texel_rate / 1e3:.2f} GFLOP/s of MLP; the decoded set takes "
        f"{load['decoded_bytes']:,} bytes ({', '.join(load['formats'])}).",
        f"- Decoding the whole set once costs {load[key] / base[key]:.1f} baseline frames at "
        f"{out['screen'][0]}x{out['screen'][1]} ({clock}).",
    ]
    if out["decoder_glsl_changed_during_run"]:
        lines.append(f"- **The decoder changed during the run** "
                     f"({', '.join(out['decoder_glsl_changed_during_run'])} rewritten): rows may "
                     f"have measured different versions; run again.")
    if out["screen"] != [1920, 1080]:
        lines.append(f"- Full-screen size {out['screen'][0]}x{out['screen'][1]} (--size); the "
                     f"default is 1920x1080.")
    if sample:
        how = f"Frame ms and ratios by {clock} (as above)" + (
            "; on a software renderer also by this process's CPU time (all threads), which is "
            "the rendering work and does not grow with other load on the machine"
            if cpu_is_work(out["device"]) else "") + "."
        lines += ["", "## Sample mode against plain sampling", "", how, "",
                  sample_table(sample, base, load, m["shader"], key, cpu_is_work(out["device"])), "",
                  *sample_findings(out, sample, base, load, key, clock)]
    if "half_extension" in out:
        lines += ["", "## 16-bit MLP arithmetic", "", *half_findings(out, sample, half, key, clock)]
    return "\n".join(lines) + "\n"


def half_findings(out: dict, sample: list[dict], half: list[dict], key: str, clock: str
                  ) -> list[str]:
    """The fp16 rows against the fp32 rows of the same filter, or why there are none."""
    if not out["half_extension"]:
        return [f"Not measured: {out['no_half_reason']}, so sample mode runs its fp32 programs "
                f"here (`ntc-view --precision auto`)."]
    by = {r["filter"]: r for r in sample}
    lines = [f"The same passes with the MLP in 16-bit floats through "
             f"`{out['half_extension']}` (the *_half programs); {clock}.", "",
             "| filter | fp32 frame ms | fp16 frame ms | fp16 / fp32 |", "|---|---:|---:|---:|"]
    for r in half:
        full = by.get(r["filter"])
        cells = (f"{full[key]:.2f}", f"{r[key] / full[key]:.2f}") if full else ("-", "-")
        lines.append(f"| {r['filter']} | {cells[0]} | {r[key]:.2f} | {cells[1]} |")
    return lines
