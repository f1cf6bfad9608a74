#!/usr/bin/env python3
"""Turns pacebench's JSON lines (one file per scenario) into bench/results/pacing.json and one
frontier plot per scenario (talk minutes per agent-hour against the abandon rate).

Headline per scenario and policy family: the best live-talk minutes per agent-hour among the
family's settings whose 95% upper bound of the abandon rate is at most 3% (a family with a
single setting either qualifies or is reported as over the cap)."""
import datetime
import json
import pathlib
import platform
import sys

CAP = 0.03
# Issue 4's targets hold on the default scenarios: at or above the lookahead reference at 25 and
# 100 agents, 90% of it at 10; 1.3 times the VICIdial replica. Elsewhere the ratios are shown.
DEFAULT_SCENARIOS = {"agents10": 0.9, "agents25": 1.0, "agents100": 1.0}
VICIDIAL_TARGET = 1.3
FAMILIES = [("preview", "preview"), ("progressive", "progressive (Power 1:1)"), ("ratio", "best fixed ratio"),
            ("power:", "best lines per ready caller"), ("adapt:3.0:0:3:HARD", "VICIdial ADAPT_HARD_LIMIT replica"),
            ("adapt:3.0:0:3:AVERAGE", "VICIdial ADAPT_AVERAGE replica"), ("impact", "original Impact Dialing formula"),
            ("oracle", "lookahead reference (privileged)"),
            ("lookahead", "lookahead rule without finish times"), ("predictive", "ours: predictive (default)"),
            ("ceiling", "clairvoyant ceiling")]


def family_of(policy):
    if policy == "predictive":
        return "predictive"
    if policy.startswith("predictive:"):
        return "predictive-target"
    for key, _ in FAMILIES:
        if policy == key or (key.endswith(":") and policy.startswith(key)) or policy.startswith(key + ":"):
            return key
    return policy


def best(rows):
    ok = [r for r in rows if r.get("abandon_ub95", 0) <= CAP]
    return max(ok, key=lambda r: r["live_talk_min_per_agent_hour"]) if ok else None


def plot(name, rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = {}
    for r in rows:
        if r["policy"] == "ceiling":
            ax.axhline(r["live_talk_min_per_agent_hour"], color="grey", linestyle=":", label="clairvoyant ceiling")
            continue
        groups.setdefault(family_of(r["policy"]), []).append(r)
    labels = dict(FAMILIES, **{"predictive-target": "ours at fixed targets"})
    for fam, rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["abandon_rate"])
        ax.plot([100 * r["abandon_rate"] for r in rs], [r["live_talk_min_per_agent_hour"] for r in rs],
                marker="o", label=labels.get(fam, fam))
    # the interesting part is around the cap; settings far beyond it are cut off
    ax.set_xlim(-0.2, 3 * 100 * CAP)
    ax.axvline(100 * CAP, color="red", linestyle="--", linewidth=1, label="3% cap")
    ax.set_xlabel("abandon rate of live answers (%)")
    ax.set_ylabel("live talk minutes per agent-hour")
    ax.set_title(f"pacing frontier: {name}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(raw_dir, results_dir, seeds):
    raw, results = pathlib.Path(raw_dir), pathlib.Path(results_dir)
    metrics, notes = [], []
    for path in sorted(raw.glob("*.jsonl")):
        if path.name.startswith("reference-"):
            continue
        name = path.stem
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        by_family = {}
        for r in rows:
            by_family.setdefault(family_of(r["policy"]), []).append(r)
        oracle = best(by_family.get("oracle", []))
        vici = by_family.get("adapt:3.0:0:3:HARD", [None])[0]
        for key, label in FAMILIES:
            chosen = best(by_family.get(key, []))
            if not chosen and by_family.get(key):
                notes.append(f"{name}: {label} never kept the 95% upper bound of its abandon rate under 3%"
                             f" (lowest {min(r['abandon_ub95'] for r in by_family[key]):.2%}).")
                continue
            if not chosen:
                continue
            m = {"name": f"{name}: {label} [{chosen['policy']}]", "value": chosen["live_talk_min_per_agent_hour"],
                 "unit": "talk min/agent-h"}
            if key == "predictive" and oracle:
                m.update(baseline=oracle["live_talk_min_per_agent_hour"],
                         ratio=round(chosen["live_talk_min_per_agent_hour"] / oracle["live_talk_min_per_agent_hour"], 3))
                if name in DEFAULT_SCENARIOS:
                    m.update(target=f">= {DEFAULT_SCENARIOS[name]} of the lookahead reference",
                             met=m["ratio"] >= DEFAULT_SCENARIOS[name])
            if chosen.get("abandon_rate") is not None and key != "ceiling":
                m["name"] += f", abandon {chosen['abandon_rate']:.2%} (ub95 {chosen['abandon_ub95']:.2%})"
            metrics.append(m)
        ours = [r for r in rows if r["policy"] == "predictive"]
        if ours and vici and vici["live_talk_min_per_agent_hour"] > 0:
            metrics.append({"name": f"{name}: ours / VICIdial replica", "value": ours[0]["live_talk_min_per_agent_hour"],
                            "unit": "talk min/agent-h", "baseline": vici["live_talk_min_per_agent_hour"],
                            "ratio": round(ours[0]["live_talk_min_per_agent_hour"] / vici["live_talk_min_per_agent_hour"], 3)})
            if name in DEFAULT_SCENARIOS:
                metrics[-1].update(target=f">= {VICIDIAL_TARGET}", met=metrics[-1]["ratio"] >= VICIDIAL_TARGET)
            if oracle:
                reach = oracle["live_talk_min_per_agent_hour"] / vici["live_talk_min_per_agent_hour"]
                notes.append(f"{name}: the lookahead reference itself reaches {reach:.3f} times the VICIdial replica"
                             + (" (so 1.3 is out of reach of the reference too)" if reach < 1.3 else "") + ".")
        # What the reference's knowledge of every caller's finish time is worth: the same rule
        # knowing only what a real dialer knows of its callers (still the true answer rates).
        blind = best(by_family.get("lookahead", []))
        if ours and blind:
            metrics.append({"name": f"{name}: ours / lookahead rule without finish times [{blind['policy']}]",
                            "value": ours[0]["live_talk_min_per_agent_hour"], "unit": "talk min/agent-h",
                            "baseline": blind["live_talk_min_per_agent_hour"],
                            "ratio": round(ours[0]["live_talk_min_per_agent_hour"] / blind["live_talk_min_per_agent_hour"], 3)})
        if ours:
            o = ours[0]
            metrics.append({"name": f"{name}: ours, abandon rate over the whole run", "value": round(100 * o["abandon_rate"], 3),
                            "unit": "%", "target": "<= 3% (the cap)", "met": o["abandon_rate"] <= CAP})
            notes.append(f"{name}: ours worst 1-hour abandon {o['worst_hour_abandon']:.2%}, caller wait p50 "
                         f"{o['wait_p50_s']} s / p95 {o['wait_p95_s']} s, {o['dials_per_agent_hour']} dials per agent-hour.")
        if plot(name, rows, results / f"pacing-{name}.png"):
            notes.append(f"![{name}](pacing-{name}.png)")
    reference = raw / "reference-agents25.jsonl"
    if reference.exists() and (raw / "agents25.jsonl").exists():
        ours_rows = {json.loads(l)["policy"]: json.loads(l) for l in (raw / "agents25.jsonl").read_text().splitlines() if l.strip()}
        for line in reference.read_text().splitlines():
            ref = json.loads(line)
            mine = ours_rows.get(ref["policy"])
            if mine:
                metrics.append({"name": f"agents25: {ref['policy']} against the Python model",
                                "value": mine["live_talk_min_per_agent_hour"], "unit": "talk min/agent-h",
                                "baseline": ref["live_talk_min_per_agent_hour"],
                                "ratio": round(mine["live_talk_min_per_agent_hour"] / ref["live_talk_min_per_agent_hour"], 3),
                                "target": "within 3%"})
                metrics[-1]["met"] = abs(metrics[-1]["ratio"] - 1) <= 0.03
    capacity = raw / "capacity.json"
    if capacity.exists():
        rows = {r["policy"]: r for r in (json.loads(l) for l in capacity.read_text().splitlines() if l.strip())}
        ours, power = rows.get("predictive"), rows.get("progressive")
        if ours and power:
            metrics.append({"name": f"capacity: {ours['callers']} callers in {ours['campaigns']} campaigns, CPU per second of calling"
                                    " (engine + simulated carrier and callers, one core)",
                            "value": ours["cpu_seconds"] / ours["virtual_seconds"], "unit": "core share",
                            "baseline": power["cpu_seconds"] / power["virtual_seconds"],
                            "ratio": round(ours["cpu_seconds"] / power["cpu_seconds"], 1)})
            metrics.append({"name": "capacity: answer-to-bridge decision p99 (engine)", "value": ours["answer_decision_p99_us"],
                            "unit": "us", "baseline": power["answer_decision_p99_us"],
                            "target": "< 10 ms (process level: bench/capacity)", "met": ours["answer_decision_p99_us"] < 10000})
            notes.append(f"capacity: {ours['answers']} answers decided, p50 {ours['answer_decision_p50_us']} us, max "
                         f"{ours['answer_decision_max_us']} us (the maximum includes preemption by other processes).")
    notes.insert(0, "Headline per family: the best setting whose abandon rate's 95% upper bound (Wilson, pooled over "
                 f"{seeds} seeds) is at most 3%. Scores come from the simulation's truth. The lookahead reference "
                 "knows the true parameters and every caller's exact finish time; ours sees only events.")
    if seeds == 1:
        # A quick run (one seed, a one-hour shift) is a smoke test: the estimators are still
        # learning for much of it, so its figures are not judged against the targets.
        for m in metrics:
            if m.pop("met", None) is not None:
                m["target"] += " (not judged in a quick run)"
    data = {"benchmark": "pacing", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {platform.system()}", "quick": seeds == 1, "runs": seeds,
            "seeds": f"0..{seeds - 1} (the same for every policy)",
            "command": "bench/run.sh" + (" --quick" if seeds == 1 else "") + " pacing", "metrics": metrics, "notes": notes}
    (results / "pacing.json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
