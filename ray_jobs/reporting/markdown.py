"""report.md: the report's numbers as plain markdown, for terminals and code review."""

from __future__ import annotations

from ray_jobs.reporting.compute import median


def pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(report: dict) -> str:
    parts = ["# ray-humaneval report", ""]
    rows = []
    for name, d in report["runs"].items():
        for suite, curve in d["pass_at_k"].items():
            for k, v in sorted(curve.items(), key=lambda kv: int(kv[0])):
                rows.append(
                    [name, suite, f"pass@{k}", pct(v["estimate"]), f"[{pct(v['ci_low'])}, {pct(v['ci_high'])}]"]
                )
    parts += [
        "## pass@k (95% bootstrap CI over tasks)",
        "",
        table(["run", "suite", "metric", "estimate", "CI"], rows),
        "",
    ]
    for avg in report["evalplus_average"]:
        parts += [
            "## EvalPlus average (HumanEval, HumanEval+, MBPP, MBPP+ pass@1)",
            "",
            f"{pct(avg['average'])} (95% CI [{pct(avg['ci_low'])}, {pct(avg['ci_high'])}]) over "
            f"{', '.join(avg['runs'])}: " + ", ".join(f"{k} {pct(v)}" for k, v in avg["scores"].items()),
            "",
        ]
    for c in report["comparisons"]:
        parts += [
            f"## {c['candidate']} vs {c['baseline']} ({c['suite']})",
            "",
            f"Mean per-task pass-rate difference {100 * c['mean_difference']:+.1f} points (95% CI "
            f"[{100 * c['ci_low']:+.1f}, {100 * c['ci_high']:+.1f}], paired bootstrap p = {c['p_bootstrap']:.3f}); "
            f"{c['tasks_better']} tasks better, {c['tasks_worse']} worse (sign test p = {c['p_sign_test']:.3f}).",
            f"Gained: {', '.join(c['gained']) or 'none'}. Lost: {', '.join(c['lost']) or 'none'}.",
            "",
        ]
    for name, d in report["runs"].items():
        parts += [f"## {name}", "", f"{d['dataset']}: {d['tasks']} tasks × n = {d['num_samples']}", ""]
        fit, sampling = d["setup"]["model_fit"], d["setup"]["sampling"]
        if sampling:
            parts += ["### Model and sampling", ""]
            if fit and fit["context_limit"]:
                served = fit["max_model_len"] or "by the attached app"
                parts += [
                    f"{d['setup']['model']} ({', '.join(fit['architectures'])}): context {fit['context_limit']} "
                    f"tokens ({fit['context_limit_from']}), served {served}; longest prompt "
                    f"{fit['longest_prompt_tokens']} tokens.",
                    "",
                ]
            parts += [
                table(
                    ["parameter", "value", "from"],
                    [[k, "" if v["value"] is None else str(v["value"]), v["source"]] for k, v in sampling.items()],
                ),
                "",
            ]
        parts += ["### Outcomes", ""]
        parts += [
            table(
                ["suite", "outcome", "samples"],
                [
                    [suite, label, count]
                    for suite, failures in d["failures"].items()
                    for label, count in failures.items()
                ],
            ),
            "",
        ]
        extraction = d["setup"]["extraction"]
        if extraction:
            parts += [
                f"Code found ({extraction['rules']} extraction): "
                + ", ".join(f"{where} {count}" for where, count in extraction["found"].items())
                + ".",
                "",
            ]
        if d["missing_modules"]:
            parts += [d["missing_modules"], ""]
        if d["sandbox"]["degraded"]:
            parts += [f"Sandbox degraded: {', '.join(d['sandbox']['degraded'])}.", ""]
        t = d["tokens"]
        if t:
            parts += (
                [
                    "### Token use",
                    "",
                    f"mean {t['tokens_mean']:.1f}, median {t['tokens_p50']:.0f}, p90 "
                    f"{t['tokens_p90']:.0f} tokens; thinking share {pct(t['thinking_share'])}; truncated "
                    f"{pct(t['truncation_rate'])}",
                    "",
                ]
                if t["tokens_mean"] is not None
                else []
            )
        q = d["quality"]
        if q["measured"]:
            parts += [
                "### Code quality",
                "",
                f"{q['measured']} of {q['distinct']} distinct programs measured: median complexity "
                f"{median(q['complexity'])}, median maintainability {median(q['maintainability'])}, median SLOC "
                f"{median(q['sloc'])}; ruff: " + ", ".join(f"{k} {v}" for k, v in list(q["ruff_by_rule"].items())[:10]),
                "",
            ]
        if d["timing"]:
            rates = {k: v for k, v in d["throughput"].items() if k != "replicas" and v is not None}
            parts += [
                "### Stage timings and throughput",
                "",
                table(["stage", "seconds"], [[k.removesuffix("_s"), f"{v:.1f}"] for k, v in d["timing"].items()]),
                "",
                ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rates.items()),
                "",
            ]
        if d["throughput"]["replicas"]:
            parts += [
                "### Replica utilisation (this run's generation window)",
                "",
                table(
                    ["replica", "requests", "samples", "busy share", "mean in flight", "tokens/s"],
                    [
                        [
                            name,
                            r["requests"],
                            r["samples"],
                            pct(r["busy_share"]),
                            r["mean_in_flight"],
                            r["tokens_per_s"],
                        ]
                        for name, r in d["throughput"]["replicas"].items()
                    ],
                ),
                "",
            ]
        timed = [(suite, r) for suite, r in d["runtime_vs_canonical"].items() if r["samples"]]
        if timed:
            parts += [
                "### Runtime relative to the canonical solution (passed samples)",
                "",
                table(
                    ["suite", "samples", "median", "p10", "p90", "share over 2x"],
                    [
                        [
                            s,
                            r["samples"],
                            f"{r['median']:.2f}",
                            f"{r['p10']:.2f}",
                            f"{r['p90']:.2f}",
                            pct(r["share_over_2x"]),
                        ]
                        for s, r in timed
                    ],
                ),
                "",
            ]
        hardest = d["task_rows"][:15]
        if hardest:
            suites = d["suites"]
            parts += [
                "### Hardest tasks",
                "",
                table(
                    ["task_id", "n", *[f"pass rate {s}" for s in suites], "mean tokens"],
                    [
                        [
                            r["task_id"],
                            r["n"],
                            *[pct(r[f"pass_rate_{s}"]) for s in suites],
                            "" if r["mean_completion_tokens"] is None else f"{r['mean_completion_tokens']:.0f}",
                        ]
                        for r in hardest
                    ],
                ),
                "",
            ]
    return "\n".join(parts)
