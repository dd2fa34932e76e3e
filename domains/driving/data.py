"""Collected shards -> training tensors: stacked frames, labels, and the teacher's targets.

The teacher's targets are the MiniLM embeddings of its perception / prediction / planning rationales and of each
agent's description (computed once through the teacher-output store), the Vi-LAD relevance map (the boxes of the
agents the rationale names, plus the ego car), and the grid cells each agent covers (for agent pooling, Eq. 12).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from domains.driving import scenarios as sim
from domains.driving.collect import load_shard
from suite.students.planner import GRID

STAGES = ("perception", "prediction", "planning")
TENSORS = ("images", "actions", "clearances", "speed", "state", "waypoints", "waypoint_mask", "agent_mask",
           "agent_cells", "relevance")  # fmt: skip
BUDGET_BLOCK = 20  # a data budget keeps whole episodes: those whose index modulo 20 is below 20 x budget


@dataclass
class DrivingData:
    images: torch.Tensor  # (N, 3 * frames, H, W) uint8, oldest frame first
    actions: torch.Tensor  # (N,)
    clearances: torch.Tensor  # (N, A) the expert's clearance [m] of each action (NaN: illegal, infeasible, unknown)
    speed: torch.Tensor  # (N, 1) the ego's speedometer [m/s]: a planner input besides the frames
    state: torch.Tensor  # (N, STATE_DIM) the privileged state (the gate's clone reads it; planners never do)
    waypoints: torch.Tensor  # (N, K, 2)
    waypoint_mask: torch.Tensor  # (N, K)
    agent_mask: torch.Tensor  # (N, A)
    agent_cells: torch.Tensor  # (N, A, Gh, Gw): share of each agent's box in each token cell
    relevance: torch.Tensor  # (N, Gh, Gw): the teacher's relevance map
    boxes: np.ndarray  # (N, A, 4) agent boxes in frame pixels
    relevant: np.ndarray  # (N, A) agents the rationale names
    scenario: list[str]
    texts: list[dict[str, Any]]
    teacher: dict[str, torch.Tensor] | None = None  # stage -> (N, D); "agents" -> (N, A, D)
    episode: torch.Tensor | None = None  # (N,) the episode index within its collection (for data budgets)

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, i: int) -> int:
        return i  # the collate function gathers rows by index (cheaper than one dict per frame)

    def rows(self, mask: torch.Tensor) -> DrivingData:
        """The rows where ``mask`` (N,) bool is true, every field alike."""
        positions = mask.nonzero().flatten()
        keep = positions.tolist()
        return DrivingData(
            **{name: getattr(self, name)[positions] for name in TENSORS},
            boxes=self.boxes[keep], relevant=self.relevant[keep], scenario=[self.scenario[i] for i in keep],
            texts=[self.texts[i] for i in keep], episode=None if self.episode is None else self.episode[positions],
            teacher=None if self.teacher is None else {k: v[positions] for k, v in self.teacher.items()},
        )  # fmt: skip


def load(shards: list[Path], frames: int = 2, camera: str = sim.DEFAULT_CAMERA,
         grid: tuple[int, int] = (GRID, GRID)) -> DrivingData:  # fmt: skip
    """Concatenate shards of frames seen through ``camera``; each row's image stacks its frame with the
    ``frames - 1`` before it in its episode. Agent cells and relevance maps are on the planner's token ``grid``
    (rows, columns)."""
    parts = [load_shard(path) for path in shards]
    if not parts:
        raise ValueError("no shards to load")
    arrays = {key: np.concatenate([p[0][key] for p in parts]) for key in parts[0][0]}
    scenario = [name for arr, _, name in parts for _ in range(len(arr["actions"]))]
    texts = [row for _, rows, _ in parts for row in rows]
    cells = TokenCells(sim.camera(camera), grid)
    if arrays["frames"].shape[1:3] != cells.camera.shape:
        raise ValueError(f"{shards[0]}: {arrays['frames'].shape[1:3]} frames, but camera '{camera}' renders "
                         f"{cells.camera.shape}; collect with that camera")  # fmt: skip
    return DrivingData(
        images=torch.from_numpy(_stack_frames(arrays["frames"], arrays["step"], frames)),
        actions=torch.from_numpy(arrays["actions"]),
        clearances=torch.from_numpy(arrays["clearances"]),
        speed=torch.from_numpy(arrays["speed"]).view(-1, 1),
        state=torch.from_numpy(arrays["state"]),
        waypoints=torch.from_numpy(arrays["waypoints"]),
        waypoint_mask=torch.from_numpy(arrays["waypoint_mask"]),
        agent_mask=torch.from_numpy(arrays["agent_mask"]),
        agent_cells=torch.from_numpy(cells.agent_cells(arrays["boxes"], arrays["agent_mask"])),
        relevance=torch.from_numpy(cells.relevance_maps(arrays["boxes"], arrays["relevant"], scenario)),
        boxes=arrays["boxes"],
        relevant=arrays["relevant"],
        scenario=scenario,
        texts=texts,
        episode=torch.from_numpy(arrays["episode"]),
    )


def budget_rows(data: DrivingData, budget: float, first: int | None = None) -> torch.Tensor:
    """(N,) bool: the rows of a ``budget`` share of the episodes (whole episodes, the same ones in every scenario
    and collection; 10% of them lie inside 25%, which lie inside 100%), among each scenario's ``first`` episodes
    only when given (the later ones, ``episode_scale``'s extras, join no budget below 100%)."""
    if data.episode is None:
        raise ValueError("these driving rows carry no episode index; load them from shards")
    rows = data.episode % BUDGET_BLOCK < round(budget * BUDGET_BLOCK)
    return rows if first is None else rows & (data.episode < first)


def epoch_draws(data: DrivingData, share: dict[str, float]) -> list[tuple[list[int], int]] | None:
    """What one training epoch draws (the Trainer's ``epoch_draws``): every frame of a scenario, or ``share`` of
    them for the scenarios it names; None (every frame once) without a share."""
    if not share:
        return None
    rows: dict[str, list[int]] = {}
    for i, scenario in enumerate(data.scenario):
        rows.setdefault(scenario, []).append(i)
    return [(indices, max(1, round(len(indices) * share.get(scenario, 1.0)))) for scenario, indices in rows.items()]


def _stack_frames(frames: np.ndarray, step: np.ndarray, count: int) -> np.ndarray:
    """(N, H, W, 3) -> (N, 3 * count, H, W); an episode's first frames repeat the earliest available one."""
    chw = frames.transpose(0, 3, 1, 2)
    stacks = []
    for lag in range(count - 1, -1, -1):
        index = np.arange(len(frames)) - np.minimum(step, lag)  # rows of one episode are consecutive
        stacks.append(chw[index])
    return np.ascontiguousarray(np.concatenate(stacks, axis=1))


@dataclass(frozen=True)
class TokenCells:
    """Pixel boxes of a camera's frames -> weights on the planner's token grid (rows, columns)."""

    camera: sim.Camera
    grid: tuple[int, int]

    def _coverage(self, lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
        """(..., G): overlap of the pixel interval [lo, hi) along ``axis`` (0: rows, 1: columns) with each token
        cell, as a fraction of the cell."""
        cells = self.grid[axis]
        cell = self.camera.shape[axis] / cells
        starts = np.arange(cells) * cell
        overlap = np.minimum(hi[..., None], starts + cell) - np.maximum(lo[..., None], starts)
        return np.clip(overlap, 0, None) / cell

    def _cover(self, boxes: np.ndarray) -> np.ndarray:
        """(..., 4) boxes (x0, y0, x1, y1) -> (..., Gh, Gw) covered share of each cell."""
        rows = self._coverage(boxes[..., 1], boxes[..., 3], 0)
        return rows[..., :, None] * self._coverage(boxes[..., 0], boxes[..., 2], 1)[..., None, :]

    def agent_cells(self, boxes: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(N, A, 4) pixel boxes -> (N, A, Gh, Gw) weights summing to 1 over the cells each box covers."""
        cover = self._cover(boxes)
        total = cover.sum((-1, -2), keepdims=True)
        weights = np.where(total > 0, cover / np.maximum(total, 1e-9), 0.0)
        return (weights * mask[..., None, None]).astype(np.float32)

    def ego_box(self, scenario: str) -> np.ndarray:
        """Pixel box of the ego car, which highway-env draws where the camera's view of ``scenario`` puts it."""
        view = self.camera.views[sim.SCENARIOS[scenario].kind]
        cx, cy = view.ego_at[0] * self.camera.width, view.ego_at[1] * self.camera.height
        half = 2.5 * view.px_per_m
        return np.array([cx - half, cy - half, cx + half, cy + half])

    def relevance_maps(self, boxes: np.ndarray, relevant: np.ndarray, scenario: list[str]) -> np.ndarray:
        """(N, Gh, Gw): 1 on cells covered by agents the rationale names, 0.5 on the ego car, 0 elsewhere.

        A cell counts as covered when a box overlaps it at all: a car (about 6 x 2.5 pixels on the square camera)
        is smaller than a cell (8 x 8), so the covered share of a cell would never come near 1.
        """
        named = np.where(relevant[..., None], boxes, 0.0)
        maps = (self._cover(named) > 0).any(1)
        ego = self._cover(np.stack([self.ego_box(name) for name in scenario]))
        return np.maximum(maps, 0.5 * (ego > 0)).astype(np.float32)


def embed_texts(data: DrivingData, encoder: Any, store_dir: str | Path, progress: bool = True) -> None:
    """Fill ``data.teacher`` with text embeddings of every rationale stage and agent description.

    Each distinct text is embedded once and kept in the teacher-output store, so reruns and the other split reuse it.
    """
    from suite.teachers import TeacherOutputStore

    distinct = sorted(
        {row[stage] for row in data.texts for stage in STAGES} | {a for r in data.texts for a in r["agents"]}
    )
    store = TeacherOutputStore(store_dir)
    try:
        vectors = store.run(encoder, distinct, batch_size=128, progress=progress)
    finally:
        store.close()
    table = {text: out.embedding for text, out in zip(distinct, vectors, strict=True)}
    dim = next(iter(table.values())).shape[0]
    teacher = {stage: torch.stack([table[row[stage]] for row in data.texts]) for stage in STAGES}
    agents = torch.zeros(len(data), data.agent_mask.shape[1], dim)
    for i, row in enumerate(data.texts):
        for a, text in enumerate(row["agents"]):
            agents[i, a] = table[text]
    teacher["agents"] = agents
    data.teacher = teacher


def action_prototypes(data: DrivingData, num_actions: int) -> torch.Tensor:
    """(A, D): the mean planning-rationale embedding of each expert action (zero for an action never taken)."""
    planning = data.teacher["planning"]
    protos = torch.zeros(num_actions, planning.shape[1])
    for a in range(num_actions):
        chosen = data.actions == a
        if chosen.any():
            protos[a] = torch.nn.functional.normalize(planning[chosen].mean(0), dim=0)
    return protos


def action_weights(data: DrivingData, num_actions: int, power: float = 0.5) -> torch.Tensor:
    """The training frames' :func:`class_weights`."""
    return class_weights(data.actions, num_actions, power)


def class_weights(actions: torch.Tensor, num_actions: int, power: float = 0.5) -> torch.Tensor:
    """(A,) cross-entropy weights ∝ frequency^-power, mean 1: 0 is plain cross-entropy, 1 fully balanced (every
    action weighs as much in total), 0.5 keeps rare lane changes from dominating."""
    counts = torch.bincount(actions, minlength=num_actions).float() + 1.0
    weights = (counts.sum() / counts).pow(power)
    return weights / weights.mean()


def make_collate(data: DrivingData):
    """Batch of row indices -> the Distiller's batch: inputs, labels and the stored teacher targets."""

    def collate(rows: list[int]) -> dict[str, Any]:
        index = torch.tensor(rows)
        batch = {
            "inputs": {"images": data.images[index].float() / 255.0, "ego_speed": data.speed[index]},
            "labels": {
                "actions": data.actions[index],
                "clearances": data.clearances[index],
                "waypoints": data.waypoints[index],
                "waypoint_mask": data.waypoint_mask[index],
            },
        }
        if data.teacher is not None:
            batch["teacher"] = {key: value[index] for key, value in data.teacher.items()}
            batch["teacher"].update(
                relevance=data.relevance[index], agent_cells=data.agent_cells[index], agent_mask=data.agent_mask[index]
            )
        return batch

    return collate


def concat(parts: list[DrivingData]) -> DrivingData:
    """Rows of ``parts`` one after another (a DAgger round's frames after the expert's); each part's frame stacks
    were built within its own episodes, so nothing crosses a part boundary."""
    first = parts[0]
    tensors = {name: torch.cat([getattr(p, name) for p in parts]) for name in TENSORS}
    teacher = None
    if all(p.teacher is not None for p in parts):
        teacher = {key: torch.cat([p.teacher[key] for p in parts]) for key in first.teacher}
    return DrivingData(
        **tensors,
        boxes=np.concatenate([p.boxes for p in parts]),
        relevant=np.concatenate([p.relevant for p in parts]),
        scenario=[name for p in parts for name in p.scenario],
        texts=[row for p in parts for row in p.texts],
        teacher=teacher,
        episode=None if any(p.episode is None for p in parts) else torch.cat([p.episode for p in parts]),
    )
