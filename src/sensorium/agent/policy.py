"""A policy that follows a BabyAI mission from what the agent sees, step after step.

The architecture of BabyAI 1.1 (Hui et al. 2020), small enough for a CPU:
    each cell of the 7x7 view (object, colour, state) -> the sum of three learned embeddings ("bag of
    words" over cell symbols), a stack of 3x3 convolutions (four by default: the central cells' windows
    then cover the whole view, 9x9, where two gave 5x5; on dev seeds PutNextLocal went from 0.14 to 0.79
    greedy with 10k demonstrations, GoToLocal from 0.68 to 0.94 with 5k), each layer modulated by the mission (FiLM:
    a scale and a shift per channel computed from the instruction), max-pooled, plus the direction
    mission words -> embedding -> GRU -> the instruction vector
    per-step features -> LSTM (memory over the episode: the view is partial) -> action logits, value
With `positions`, each of the 49 cells also adds a learned embedding of where it lies in the view. The
view is egocentric (the agent always stands at the bottom middle, facing up), so that says where a thing is
relative to the agent: the max-pool keeps what was seen but, without it, only the convolutions' windows and
the padding hint where. On PutNextLocal's dev seeds it lifted two convolutions by 11 points; four without it
did far better, so it is off by default.
The value head is trained later by PPO fine-tuning; imitation (`sensorium.agent.imitation`) trains
the rest. Weights are safetensors + JSON, like every model of ours.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..weights import SavedModel
from .missions import mission_words

STEM, FORMAT = "policy", "sensorium-agent-policy/1"
POLICY_DIR = "policy"  # a run folder's policy lives in RUN/policy
HINT = "not an agent policy (train one with `sensorium agent train DEMOS --out RUN`)"
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
ACTIONS = 7  # minigrid: left, right, forward, pickup, drop, toggle, done
CELL_VALUES = 16  # each of a cell's three symbols is below this (objects 0-10, colours 0-5, states 0-2)
VIEW = 7  # minigrid's default view: 7 x 7 cells
DIRECTIONS = 4


@dataclass(frozen=True)
class PolicyConfig:
    vocabulary: tuple[str, ...] = (PAD, UNK)
    width: int = 64
    conv_layers: int = 4  # four 3x3 layers give the centre a 9x9 window over the 7x7 view (two, the first default: 5x5)
    positions: bool = False  # a learned embedding per view cell (where a thing is, relative to the agent)
    max_words: int = 64
    trained: dict = field(default_factory=dict)


class InstructionPolicy(SavedModel, nn.Module):
    stem, file_format, hint = STEM, FORMAT, HINT
    computes_loss = True  # the Trainer optimises forward(batch): behaviour cloning's cross-entropy

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.config = config
        self.index = {word: i for i, word in enumerate(config.vocabulary)}
        width = config.width
        self.cells = nn.Embedding(3 * CELL_VALUES, width)
        self.register_buffer("offsets", torch.arange(3) * CELL_VALUES, persistent=False)
        self.places = nn.Parameter(torch.randn(width, VIEW, VIEW)) if config.positions else None
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(config.conv_layers))
        self.norms = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(config.conv_layers))
        self.films = nn.ModuleList(nn.Linear(width, 2 * width) for _ in range(config.conv_layers))
        self.directions = nn.Embedding(DIRECTIONS, width)
        self.words = nn.Embedding(len(config.vocabulary), width, padding_idx=PAD_ID)
        self.instruction = nn.GRU(width, width, batch_first=True)
        self.memory = nn.LSTM(width, width, batch_first=True)
        self.policy = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, ACTIONS))
        self.value = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1))

    @classmethod
    def config_from(cls, record: dict) -> PolicyConfig:
        record["vocabulary"] = tuple(record["vocabulary"])
        return PolicyConfig(**record)

    # ---- inputs ---------------------------------------------------------------------------
    def mission_ids(self, missions: list[str]) -> Tensor:
        """(B, L) word ids, PAD after each mission; a word never seen in training is UNK."""
        encoded = [[self.index.get(w, UNK_ID) for w in mission_words(m)][: self.config.max_words] or [UNK_ID]
                   for m in missions]
        out = torch.full((len(encoded), max(len(e) for e in encoded)), PAD_ID, dtype=torch.long)
        for row, ids in enumerate(encoded):
            out[row, :len(ids)] = torch.tensor(ids)
        return out

    def unknown_words(self, mission: str) -> list[str]:
        return [w for w in mission_words(mission) if w not in self.index]

    def widened(self, words: list[str], trained: dict) -> InstructionPolicy:
        """A copy knowing `words` too (appended to the vocabulary, so every known word keeps its id and
        its embedding; a new word starts from fresh weights): a curriculum's next level starts here."""
        new = [w for w in dict.fromkeys(words) if w not in self.index]
        config = replace(self.config, vocabulary=(*self.config.vocabulary, *new), trained=trained)
        wider = InstructionPolicy(config)
        state = self.state_dict()
        grown = wider.words.weight.detach().clone()
        grown[: len(self.config.vocabulary)] = state["words.weight"]
        wider.load_state_dict({**state, "words.weight": grown})
        return wider

    def encode_missions(self, ids: Tensor) -> Tensor:
        """(B, L) -> (B, width): the GRU's state after each mission's last word."""
        outputs, _ = self.instruction(self.words(ids))
        last = ids.ne(PAD_ID).sum(dim=1).clamp(min=1) - 1
        return outputs[torch.arange(len(ids)), last]

    def see(self, images: Tensor, directions: Tensor, missions: Tensor) -> Tensor:
        """(N, 7, 7, 3) cell symbols, (N,) directions, (N, width) their missions -> (N, width)."""
        x = self.cells(images.long().clamp(0, CELL_VALUES - 1) + self.offsets).sum(dim=3).permute(0, 3, 1, 2)
        if self.places is not None:
            x = x + self.places
        for conv, norm, film in zip(self.convs, self.norms, self.films):
            scale, shift = film(missions).chunk(2, dim=1)
            x = F.relu(norm(conv(x)) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]) + x
        return x.amax(dim=(2, 3)) + self.directions(directions.long())

    # ---- training -------------------------------------------------------------------------
    def logits(self, batch: dict) -> tuple[Tensor, Tensor]:
        """batch: images (B, T, 7, 7, 3), directions (B, T), missions (B, L), and optionally `mask` (B, T), True
        on real steps, padding only after each episode's last -> action logits (B, T, 7), values (B, T).

        Only real steps are seen: the view encoder runs on them alone, so its batch norms' statistics are
        those of real views, not of the blank padding (two thirds of a GoTo batch: its first 10,000 episodes
        average 52 steps, the longest 203), and padding costs no convolutions. The memory reads zeros after an
        episode's end, which cannot reach the steps before it."""
        images, directions = batch["images"], batch["directions"]
        b, t = directions.shape
        missions = self.encode_missions(batch["missions"])
        mask = batch.get("mask")
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=directions.device)
        rows, _ = mask.nonzero(as_tuple=True)
        seen = self.see(images[mask], directions[mask], missions[rows])
        steps = seen.new_zeros(b, t, seen.shape[-1]).index_put((mask,), seen)
        remembered, _ = self.memory(steps)
        return self.policy(remembered), self.value(remembered)[..., 0]

    def forward(self, batch: dict) -> Tensor:
        logits, _ = self.logits(batch)
        mask = batch["mask"]
        return F.cross_entropy(logits[mask], batch["actions"][mask].long())

    # ---- acting ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, images: Tensor, directions: Tensor, missions: Tensor, state=None) -> tuple[Tensor, tuple]:
        """One step for N agents at once: (N, 7, 7, 3), (N,), (N, width) encoded missions, the memory
        from the last step (None at the start) -> action logits (N, 7) and the new memory."""
        seen = self.see(images, directions, missions)
        remembered, state = self.memory(seen[:, None], state)
        return self.policy(remembered[:, 0]), state

    def unroll(self, images: Tensor, directions: Tensor, missions: Tensor, state: tuple,
               starts: Tensor) -> tuple[Tensor, Tensor, tuple]:
        """A stretch of steps for N agents whose episodes may end and restart inside it (PPO's rollouts):
        (N, T, 7, 7, 3) views, (N, T) directions, (N, T, width) encoded missions, the memory before the
        first step, and (N, T) `starts` marking each step that begins an episode (the memory is cleared
        there) -> action logits (N, T, 7), values (N, T), and the memory after the last step."""
        n, t = directions.shape
        seen = self.see(images.flatten(0, 1), directions.flatten(), missions.flatten(0, 1)).view(n, t, -1)
        hidden, cell = state
        outputs = []
        for step in range(t):
            keep = (~starts[:, step]).to(seen.dtype)[None, :, None]
            out, (hidden, cell) = self.memory(seen[:, step:step + 1], (hidden * keep, cell * keep))
            outputs.append(out[:, 0])
        remembered = torch.stack(outputs, dim=1)
        return self.policy(remembered), self.value(remembered)[..., 0], (hidden, cell)

    def blank_memory(self, agents: int) -> tuple[Tensor, Tensor]:
        zeros = torch.zeros(1, agents, self.config.width)
        return zeros, zeros.clone()

    def act(self, images: Tensor, directions: Tensor, missions: Tensor, state=None) -> tuple[Tensor, tuple]:
        """`step`, keeping only the most likely actions (N,)."""
        logits, state = self.step(images, directions, missions, state)
        return logits.argmax(dim=1), state


def load_policy(path: str | Path) -> InstructionPolicy:
    """The policy of a run folder from `sensorium agent train`, or in its policy/ folder itself."""
    path = Path(path)
    return InstructionPolicy.load(path if (path / f"{STEM}.json").is_file() else path / POLICY_DIR)
