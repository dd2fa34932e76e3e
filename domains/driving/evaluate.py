"""Open-loop metrics on held-out expert frames and closed-loop driving in the simulator.

Closed loop: each policy drives ``episodes`` seeded episodes per scenario (seeds disjoint from the training data's),
spread over worker processes. Per scenario: collision rate (episodes that end in a crash), collisions per km, mean
speed, mean episode return (highway-env's reward), off-road rate (episodes with any step off the road), and, against
the expert on the same seeds, progress (distance driven / the expert's) and success rate (no crash and at least
``SUCCESS_PROGRESS`` of the expert's distance): a policy cannot score by stopping. Every episode keeps its actions,
so a planner that drives exactly like a constant policy is caught (:func:`same_as_constant`).
"""

from __future__ import annotations

import multiprocessing
from typing import Any, NamedTuple

import numpy as np
import torch

from domains.driving import scenarios as sim
from domains.driving.collect import MAX_EPISODE_STEPS, episode_seed
from domains.driving.data import DrivingData
from domains.driving.expert import LANE_CHANGES
from domains.driving.policies import ExpertPolicy, PolicySpec, build_policy

EVAL_SEED_OFFSET = 1_000_003  # closed-loop episodes never reuse a training or validation episode's seed
CHUNK_TIMEOUT_S = 900  # a chunk of 10 episodes takes seconds; a worker that died must not hang the run
SUCCESS_PROGRESS = 0.9  # an episode succeeds without a crash and with >= 90% of the expert's distance


# -- open loop ---------------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(planner: torch.nn.Module, data: DrivingData, batch_size: int = 256) -> dict[str, torch.Tensor]:
    planner.eval()
    outs = []
    for start in range(0, len(data), batch_size):
        images = data.images[start : start + batch_size].float() / 255.0
        out = planner(images, data.speed[start : start + batch_size])
        outs.append({k: out[k] for k in ("logits", "waypoints", "reasoning")})
    return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}


def action_metrics(predicted: torch.Tensor, data: DrivingData) -> dict[str, float]:
    """Accuracy, macro-F1 over the actions taken by either, and recall of SLOWER (the action a planner that never
    brakes gets wrong while its accuracy still looks fine); accuracy per scenario (the goals are per scenario)."""
    from suite.eval import macro_f1

    expert = data.actions
    slower = expert == sim.ACTION_INDEX["SLOWER"]
    metrics = {
        "action_accuracy": float((predicted == expert).float().mean()),
        "action_macro_f1": macro_f1(predicted.tolist(), expert.tolist()),
        "slower_recall": float((predicted[slower] == expert[slower]).float().mean()) if slower.any() else float("nan"),
    }
    scenario = np.array(data.scenario)
    for name in sorted(set(data.scenario)):
        rows = torch.from_numpy(scenario == name)
        metrics[f"action_accuracy_{name}"] = float((predicted[rows] == expert[rows]).float().mean())
    return metrics


def constant_open_loop(action: str, data: DrivingData) -> dict[str, float]:
    """A constant policy's open-loop action metrics on the same frames."""
    return action_metrics(torch.full_like(data.actions, sim.ACTION_INDEX[action]), data)


def open_loop_metrics(planner: torch.nn.Module, data: DrivingData) -> dict[str, float]:
    """Action metrics (:func:`action_metrics`), waypoint L2 (m) at 1/2/3 s, and rationale retrieval accuracy.

    Retrieval: the reasoning head's vector picks the nearest (cosine) of the split's distinct planning rationales;
    it is right when that is the frame's own rationale.
    """
    out = predict(planner, data)
    metrics = action_metrics(out["logits"].argmax(-1), data)
    errors = (out["waypoints"] - data.waypoints).norm(dim=-1)  # (N, K)
    for k in range(errors.shape[1]):
        valid = data.waypoint_mask[:, k]
        metrics[f"waypoint_l2_{k + 1}s"] = float(errors[valid, k].mean()) if valid.any() else float("nan")
    metrics["rationale_retrieval"] = retrieval_accuracy(out["reasoning"], data)
    return metrics


def retrieval_accuracy(reasoning: torch.Tensor, data: DrivingData) -> float:
    texts = [row["planning"] for row in data.texts]
    distinct = sorted(set(texts))
    index = {text: i for i, text in enumerate(distinct)}
    bank = torch.stack([data.teacher["planning"][texts.index(t)] for t in distinct])  # (R, D)
    nearest = (
        torch.nn.functional.normalize(reasoning, dim=-1) @ torch.nn.functional.normalize(bank, dim=-1).T
    ).argmax(-1)
    target = torch.tensor([index[t] for t in texts])
    return float((nearest == target).float().mean())


# -- closed loop -------------------------------------------------------------------------------------------------


def drive_episode(policy: Any, env: Any, scenario: str, seed: int, shadow: Any = None) -> dict[str, Any]:
    """One seeded episode: crash, mean speed, return, off-road, distance driven (m) and the actions taken.

    ``shadow`` (a :class:`PrivilegedExpert`) also says at every step what the expert would have done there and
    whether it had any safe option left (``expert_actions``, ``no_safe``: one character per step), for
    :func:`crash_cause`."""
    policy.reset()
    frame = sim.reset(env, seed)
    speeds, actions, asked, trapped, total, offroad, done, info = [], [], [], [], 0.0, False, False, {}
    while not done and len(speeds) < MAX_EPISODE_STEPS:
        decision = shadow.decide(env, scenario) if shadow is not None else None
        if decision is not None:
            asked.append(decision.action)
            trapped.append(all(clearance < 0 for clearance in decision.clearances.values()))
        if decision is not None and _is_shadows_expert(policy, shadow):
            action = decision.action  # the shadow's own expert drives: one decision a step, not the same one twice
        else:
            action, _ = policy.act(frame, env, scenario)
        frame, reward, done, info = sim.step(env, scenario, action)
        speeds.append(float(env.unwrapped.vehicle.speed))
        actions.append(action)
        total += reward
        offroad |= not env.unwrapped.vehicle.on_road
    row = {
        "crashed": float(info.get("crashed", False)),
        "speed": float(np.mean(speeds)),
        "return": total,
        "offroad": float(offroad),
        "distance": float(np.sum(speeds)) / sim.POLICY_HZ,
        "actions": _encode(actions),
    }
    if shadow is not None:
        row |= {"expert_actions": _encode(asked), "no_safe": "".join(str(int(t)) for t in trapped)}
    return row


def _is_shadows_expert(policy: Any, shadow: Any) -> bool:
    """True when ``policy`` is the expert with the shadow's own margins (it decides from the same state alike)."""
    return isinstance(policy, ExpertPolicy) and policy.expert.config == shadow.config


def _encode(actions: list[str]) -> str:
    return "".join(str(sim.ACTION_INDEX[a]) for a in actions)


CRASH_CAUSES = ("missed a brake", "missed a lane change", "unasked lane change", "sped up unasked",
                "braked unasked", "held back", "as the expert, no safe option", "as the expert")  # fmt: skip


def crash_cause(row: dict[str, Any], window: int = 3) -> str | None:
    """Why a shadowed episode (:func:`drive_episode`) ended in a crash, from its last ``window`` decisions: the
    latest step where the policy did not do what the expert would have (the expert's action against the policy's:
    it wanted a brake or a lane change the policy did not make; the policy changed lanes, sped up or braked
    unasked; or it held its speed where the expert sped up), else it did as the expert would have, with or without
    a safe option left at the window's first step. None for an episode without a crash."""
    if not row["crashed"]:
        return None
    taken, asked = row["actions"][-window:], row["expert_actions"][-window:]
    for mine, expert in zip(reversed(taken), reversed(asked), strict=True):
        if mine != expert:
            return _disagreement(sim.ACTIONS[int(expert)], sim.ACTIONS[int(mine)])
    return "as the expert, no safe option" if row["no_safe"][-window:][:1] == "1" else "as the expert"


def _disagreement(expert: str, mine: str) -> str:
    if expert == "SLOWER":
        return "missed a brake"
    if expert in LANE_CHANGES:
        return "missed a lane change"
    if mine in LANE_CHANGES:
        return "unasked lane change"
    return {"FASTER": "sped up unasked", "SLOWER": "braked unasked"}.get(mine, "held back")


Episodes = dict[str, dict[str, list[dict[str, Any]]]]  # policy -> scenario -> one row per seeded episode, in order


class Chunk(NamedTuple):
    """One worker task: consecutive seeded episodes of one policy on one scenario."""

    policy: str
    spec: PolicySpec
    scenario: str
    start: int  # where the first episode sits in the scenario's list of seeds
    seeds: list[int]
    camera: str
    shadow: Any  # ExpertConfig of the expert labelling every step, or None


def _run_chunk(task: Chunk) -> tuple[Chunk, list[dict[str, Any]]]:
    from domains.driving.expert import PrivilegedExpert

    torch.set_num_threads(1)
    policy, env = build_policy(task.spec), sim.make_env(task.scenario, task.camera)
    expert = PrivilegedExpert(task.shadow) if task.shadow is not None else None
    try:
        return task, [drive_episode(policy, env, task.scenario, seed, expert) for seed in task.seeds]
    finally:
        env.close()


def closed_loop(
    policies: dict[str, PolicySpec],
    scenarios: tuple[str, ...],
    episodes: int,
    seed: int,
    workers: int = 2,
    chunk: int = 10,
    offset: int = 0,
    progress: bool = True,
    camera: str = sim.DEFAULT_CAMERA,
    shadow: Any = None,
) -> Episodes:
    """``{policy: {scenario: episode rows}}`` over the same seeded episodes ``offset .. offset + episodes - 1`` per
    scenario for every policy, in seed order (row ``i`` of every policy is the same episode). Every policy sees the
    scenes through ``camera`` (the planners' camera; the expert and the constants do not look). ``shadow``: an
    :class:`ExpertConfig` whose expert labels every step every policy meets (slower; for :func:`crash_cause`)."""
    from suite.progress import progress_bar

    tasks = []
    for scenario in scenarios:
        seeds = [episode_seed(seed + EVAL_SEED_OFFSET, scenario, e) for e in range(offset, offset + episodes)]
        for name, spec in policies.items():
            starts = range(0, episodes, chunk)
            tasks += [Chunk(name, spec, scenario, i, seeds[i : i + chunk], camera, shadow) for i in starts]
    results: Episodes = {n: {s: [{}] * episodes for s in scenarios} for n in policies}
    bar = progress_bar(len(policies) * len(scenarios) * episodes, "closed loop", "episode", enabled=progress)
    # spawn, not fork: a forked child inherits torch's thread pool state and can hang in its first convolution.
    with multiprocessing.get_context("spawn").Pool(workers) as pool, bar:
        finished = pool.imap_unordered(_run_chunk, tasks)
        for _ in tasks:
            try:
                task, rows = finished.next(timeout=CHUNK_TIMEOUT_S)
            except multiprocessing.TimeoutError:
                raise RuntimeError(
                    f"closed loop: no episode chunk finished in {CHUNK_TIMEOUT_S} s (a worker process died?)"
                ) from None
            results[task.policy][task.scenario][task.start : task.start + len(rows)] = rows
            bar.update(len(rows))
        pool.close()  # let the workers finish on their own; the context's terminate() is then a no-op
        pool.join()
    return results


def failed(rows: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[bool]:
    """Each episode's failure, the complement of ``summarise``'s success: a crash, or under ``SUCCESS_PROGRESS`` of
    ``reference``'s (the expert's) distance on the same seed."""
    return [bool(r["crashed"]) or r["distance"] < SUCCESS_PROGRESS * e["distance"]
            for r, e in zip(rows, reference, strict=True)]  # fmt: skip


def summarise(rows: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, float]:
    """A policy's metrics on one scenario's episodes; ``reference``: the expert's rows on the same seeds."""
    crashed = np.array([r["crashed"] for r in rows])
    distance = np.array([r["distance"] for r in rows])
    expert = np.array([r["distance"] for r in reference])
    return {
        "collision_rate": float(crashed.mean()),
        "collisions_per_km": float(crashed.sum() / max(distance.sum() / 1000, 1e-9)),
        "mean_speed": float(np.mean([r["speed"] for r in rows])),
        "episode_return": float(np.mean([r["return"] for r in rows])),
        "offroad_rate": float(np.mean([r["offroad"] for r in rows])),
        "progress": float(distance.sum() / max(expert.sum(), 1e-9)),
        "success_rate": float(np.mean(np.logical_not(failed(rows, reference)))),
        "episodes": float(len(rows)),
    }


def summarise_all(episodes: Episodes, expert: str = "expert") -> dict[str, dict[str, dict[str, float]]]:
    """``{policy: {scenario: metrics}}``, every policy measured against ``expert`` on the same seeds."""
    return {name: {s: summarise(rows, episodes[expert][s]) for s, rows in per.items()}
            for name, per in episodes.items()}  # fmt: skip


def same_as_constant(rows: list[dict[str, Any]], constant: list[dict[str, Any]]) -> bool:
    """True when a policy took exactly the constant policy's actions in every episode (so drove the same episodes):
    a planner that never leaves its default."""
    if len(rows) != len(constant):
        return False
    return all(a["actions"] == b["actions"] for a, b in zip(rows, constant, strict=True))
