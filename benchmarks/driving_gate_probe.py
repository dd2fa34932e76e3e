"""Is the driving expert clonable? The gate of issue 14, taken apart: experts of different settings (``--experts``:
e.g. the other cars' planned routes read from the simulator, ``other_routes=known``, privileged, or every road they
could take kept clear, ``other_routes=any``, what a camera could know; or other margins), and for each, its state clone
(the gate's MLP on privileged state) trained on the expert's own episodes (plain behaviour cloning) and after DAgger
rounds in which the clone drives and the expert labels.

    python -m benchmarks.driving_gate_probe --episodes 200 --out docs/results/driving_gate_probe
    python -m benchmarks.driving_gate_probe --experts other_routes=known other_routes=any,speed_up_margin=4
    python -m benchmarks.driving_gate_probe --experts "" --rounds 0 --class-weight-powers 0 0.5 1
    python -m benchmarks.driving_gate_probe --experts "" --rounds 0 --features raw slots

Each expert records ``--train-episodes`` episodes per scenario, then ``--rounds`` DAgger rounds of
``--dagger-episodes`` (beta = 0.5, 0.25, ...: the share of steps the expert still drives; ``--betas linear``:
1 - k / rounds, as the driving run's DAgger); the clone is retrained on
the aggregate after each. Every policy, and constant IDLE and SLOWER (the trivial baselines), then drives the same
``--episodes`` seeded episodes per scenario, after the driving report's 20 (never the same ones). Progress is over
the first expert's distance on the same episode. Writes ``gate_probe.md`` / ``.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXPERTS = ("other_routes=known", "other_routes=any")


def expert_settings(spec: str) -> dict[str, Any]:
    """``"field=value,field=value"`` -> :class:`ExpertConfig` keyword arguments (an empty spec: the defaults)."""
    from dataclasses import fields

    from domains.driving.expert import ExpertConfig

    types = {f.name: f.type for f in fields(ExpertConfig)}
    settings: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        if name not in types or not value:
            raise SystemExit(f"--experts {spec!r}: expected field=value with a field of {', '.join(types)}")
        settings[name] = value if types[name] in (str, "str") else float(value)
    ExpertConfig(**settings)  # bad values fail here, before any episode
    return settings


def clone_with_dagger(expert: Any, scenarios: tuple[str, ...], work: Path, args: argparse.Namespace,
                      power: float = 0.0, slots: bool = False) -> list[Path]:  # fmt: skip
    """The state clone's weights after plain cloning and after each DAgger round (``rounds + 1`` files), its
    cross-entropy weighted by action frequency^-``power``, reading the lane slots with ``slots``. The expert's own
    episodes are recorded once per ``work`` folder: the other clones share them."""
    import torch

    from domains.driving.collect import CollectPlan, collect
    from domains.driving.dagger import betas, labelled_states
    from domains.driving.policies import PolicySpec
    from domains.driving.state import save_cloner, train_state_cloner

    shards, weights, chain = [work / "expert"], [], work / f"power{power:g}-slots{int(slots)}"
    # the expert's share of each round's steps: halving (0.5, 0.25, ...) or, as the driving run's DAgger, linear to 0
    schedule = [0.5 ** (k + 1) for k in range(args.rounds)] if args.betas == "halving" else betas(args.rounds)
    if not shards[0].is_dir():
        plan = CollectPlan(scenarios, args.train_episodes, seed=0, expert=expert)
        collect(plan, shards[0], progress=False, workers=2)
    for round_ in range(args.rounds + 1):
        recorded = [labelled_states(folder) for folder in shards]
        states, actions = torch.cat([s for s, _ in recorded]), torch.cat([a for _, a in recorded])
        clone = train_state_cloner(states, actions, args.gate_epochs, class_weight_power=power, slots=slots)
        weights.append(save_cloner(clone, chain / f"clone{round_}.st"))
        print(f"[{expert}] {chain.name}, round {round_}: clone on {len(states)} frames", flush=True)
        if round_ == args.rounds:
            break
        shards.append(chain / f"dagger{round_ + 1}")
        plan = CollectPlan(scenarios, args.dagger_episodes, seed=100 + round_, expert=expert,
                           driver=PolicySpec("state", str(weights[-1])), beta=schedule[round_])  # fmt: skip
        collect(plan, shards[-1], progress=False, workers=2)
    return weights


def probe(args: argparse.Namespace, experts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``experts``: spec -> its :class:`ExpertConfig` settings, in the order given."""
    from domains.driving.evaluate import closed_loop, summarise
    from domains.driving.expert import ExpertConfig
    from domains.driving.policies import PolicySpec

    scenarios = tuple(args.scenarios)
    driven: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, (spec, settings) in enumerate(experts.items()):
            specs = {"expert": PolicySpec("expert", kwargs=tuple(settings.items()))}
            for power, features in itertools.product(args.class_weight_powers, args.features):
                work, slots = Path(tmp) / f"expert{index}", features == "slots"
                weights = clone_with_dagger(ExpertConfig(**settings), scenarios, work, args, power, slots)
                name = "state clone" + (", lane slots" if slots else "")
                name += f", CE weight freq^-{power:g}" if power else ""
                specs |= {name: PolicySpec("state", str(weights[0]))}
                if args.rounds:
                    specs |= {f"{name} + {args.rounds} DAgger": PolicySpec("state", str(weights[-1]))}
            episodes = closed_loop(specs, scenarios, args.episodes, seed=0, offset=20, progress=False)
            driven |= {f"{name} ({spec or 'defaults'})": per for name, per in episodes.items()}
    driven |= closed_loop(constant_policies(), scenarios, args.episodes, seed=0, offset=20, progress=False)
    first = driven[f"expert ({args.experts[0] or 'defaults'})"]  # every row's progress is over this one's
    return {name: {s: summarise(per[s], first[s]) for s in scenarios} for name, per in driven.items()}


def constant_policies() -> dict[str, Any]:
    """The trivial baselines the driving report carries (constant IDLE, the expert's most common action, and SLOWER),
    named as this probe's other rows."""
    from domains.driving.pipeline import CONSTANTS
    from domains.driving.policies import constant_spec

    return {name.replace("-", " "): constant_spec(action) for name, action in CONSTANTS.items()}


def table(results: dict[str, Any], scenarios: list[str]) -> list[str]:
    lines = ["| policy | " + " | ".join(scenarios) + " |", "|---" * (len(scenarios) + 1) + "|"]
    for name, per in results.items():
        cells = [f"{per[s]['collision_rate']:.3f} / {per[s]['progress']:.2f}" for s in scenarios]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    from suite.bench.machine import machine_info
    from suite.report import header

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", nargs="+", default=list(EXPERTS),
                        help="expert settings, each 'field=value,...' of ExpertConfig ('' = defaults)")  # fmt: skip
    parser.add_argument("--episodes", type=int, default=200, help="closed-loop episodes per scenario and policy")
    parser.add_argument("--train-episodes", type=int, default=60, help="expert episodes per scenario to clone")
    parser.add_argument("--dagger-episodes", type=int, default=30, help="episodes per scenario in a DAgger round")
    parser.add_argument("--rounds", type=int, default=3, help="DAgger rounds")
    parser.add_argument("--betas", choices=["halving", "linear"], default="halving",
                        help="the expert's share of a DAgger round's steps: 0.5, 0.25, ... or 1 - k/n")  # fmt: skip
    parser.add_argument("--gate-epochs", type=int, default=200, help="the state clone's epochs (the gate's)")
    parser.add_argument("--class-weight-powers", nargs="+", type=float, default=[0.0],
                        help="one clone per power: CE weight of an action ∝ frequency^-power (0: plain)")  # fmt: skip
    parser.add_argument("--features", nargs="+", choices=["raw", "slots"], default=["raw"],
                        help="one clone per choice: the state alone, or with its lane slots")  # fmt: skip
    parser.add_argument("--scenarios", nargs="+", default=["highway", "merge", "intersection", "roundabout"])
    parser.add_argument("--out", type=Path, default=Path("docs/results/driving_gate_probe"))
    args = parser.parse_args(argv)
    experts = {spec: expert_settings(spec) for spec in args.experts}  # a wrong spec stops here, before any episode
    started = time.perf_counter()
    results = probe(args, experts)
    seconds = time.perf_counter() - started
    # shlex.join: an empty --experts spec (the defaults) stays visible as ''
    given = argv if argv is not None else sys.argv[1:]
    command = shlex.join(["python", "-m", "benchmarks.driving_gate_probe", *given])
    payload = {"command": command, "machine": machine_info(), "seconds": seconds, "settings": vars(args) | {
        "out": str(args.out)}, "results": results}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate_probe.json").write_text(json.dumps(payload, indent=2) + "\n")
    head = header("Driving gate probe: is the expert clonable from privileged state?", payload, seconds,
                  "gate_probe.json")  # fmt: skip
    lines = [*head, "Collision rate / progress (distance over the first expert's on the same episode), "
             f"{args.episodes} episodes per scenario:", "", *table(results, args.scenarios), "", ""]  # fmt: skip
    (args.out / "gate_probe.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
