"""A synthetic interaction log in the spirit of the HSTU paper's synthetic study.

Items have latent vectors grouped around topics. Each user's interests are a draw from a
hierarchical Dirichlet process over those topics (a global stick-breaking prior shared by all
users, a Dirichlet draw per user), and they drift: at every step the user's topic weights
move a little towards a fresh draw. An interaction picks a topic from the current weights
and an item from that topic's popularity-skewed distribution, or, with probability
`follow_prob`, follows the previous item: one of that item's few fixed successors, soon after
it. The follow-ups give the data an order that a sequence model can learn and a bag of recent
items cannot, and a transition table whose size rewards capacity. The engagement label is
Bernoulli in the affinity between the user's current interest vector and the item.
Sizes are parameters, so data size is a scaling axis; the same seed gives the same data.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from scaling.data.log import InteractionLog
from scaling.errors import GrscaleError


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    num_users: int = 2000
    num_items: int = 1000
    mean_seq_len: float = 40.0
    seed: int = 0
    num_topics: int = 32  # truncation of the Dirichlet process
    latent_dim: int = 16
    concentration: float = 10.0  # global stick-breaking concentration (gamma): how many topics matter
    user_concentration: float = 2.0  # total per-user Dirichlet mass (alpha): small = focused users
    drift: float = 0.05  # per-step pull of a user's topic weights towards a fresh draw
    topic_sharpness: float = 8.0  # how strongly a topic concentrates on its nearest items
    label_scale: float = 6.0  # slope of the engagement probability in the affinity
    follow_prob: float = 0.5  # chance that an interaction follows up on the previous item
    num_successors: int = 2  # the fixed follow-ups of each item, drawn from its own topic
    follow_gap: float = 0.1  # follow-ups come this fraction of the user's usual gap later
    min_seq_len: int = 3  # enough for a leave-one-out split

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if self.num_users < 1 or self.num_items < 2:
            raise GrscaleError("synthetic data needs num_users >= 1 and num_items >= 2")
        if self.mean_seq_len < self.min_seq_len:
            raise GrscaleError(f"synthetic mean_seq_len must be >= {self.min_seq_len}, got {self.mean_seq_len}")
        if not 0.0 <= self.follow_prob <= 1.0 or self.num_successors < 1:
            raise GrscaleError("synthetic follow_prob must be in [0, 1] and num_successors >= 1")


def _stick_breaking(rng: np.random.Generator, gamma: float, k: int) -> np.ndarray:
    fractions = rng.beta(1.0, gamma, size=k)
    remaining = np.concatenate([[1.0], np.cumprod(1.0 - fractions[:-1])])
    weights = fractions * remaining
    return weights / weights.sum()


def _sample_rows(rng: np.random.Generator, cdf: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a [n, k] matrix of cumulative probabilities."""
    u = rng.random(cdf.shape[0]) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), cdf.shape[1] - 1)


def generate_synthetic(config: SyntheticConfig) -> InteractionLog:
    config.validate()
    rng = np.random.default_rng(config.seed)
    k, dim = config.num_topics, config.latent_dim
    topic_vecs = rng.normal(size=(k, dim))
    topic_vecs /= np.linalg.norm(topic_vecs, axis=1, keepdims=True)
    # Items sit near a topic each, with individual noise and a popularity offset.
    item_topic = rng.integers(0, k, size=config.num_items)
    item_vecs = topic_vecs[item_topic] + 0.5 * rng.normal(size=(config.num_items, dim)) / np.sqrt(dim)
    item_vecs /= np.linalg.norm(item_vecs, axis=1, keepdims=True)
    popularity = rng.normal(scale=0.7, size=config.num_items)
    topic_logits = config.topic_sharpness * topic_vecs @ item_vecs.T + popularity[None, :]
    topic_item_probs = np.exp(topic_logits - topic_logits.max(axis=1, keepdims=True))
    topic_item_cdf = np.cumsum(topic_item_probs, axis=1)
    topic_item_cdf /= topic_item_cdf[:, -1:]
    flat_cdf = (topic_item_cdf + np.arange(k)[:, None]).ravel()

    def draw_from_topics(topics: np.ndarray) -> np.ndarray:
        # Row t of the flat CDF spans [t, t+1): one searchsorted draws every item at once.
        position = np.searchsorted(flat_cdf, topics + rng.random(topics.size))
        return np.minimum(position - topics * config.num_items, config.num_items - 1)

    successors = draw_from_topics(np.repeat(item_topic, config.num_successors)).reshape(config.num_items, -1)

    beta = _stick_breaking(rng, config.concentration, k)
    alpha = config.user_concentration * beta
    n_users = config.num_users
    extra = max(config.mean_seq_len - config.min_seq_len, 1e-9)
    lengths = config.min_seq_len + rng.geometric(1.0 / (1.0 + extra), size=n_users) - 1
    weights = rng.dirichlet(alpha, size=n_users)
    # Mean gap per user: a day or so, so histories span weeks to months of a year-long log.
    rate = rng.lognormal(mean=np.log(86400.0), sigma=1.0, size=n_users)
    clock = 1.6e9 + rng.uniform(0, 3e7, size=n_users)

    max_len = int(lengths.max())
    items = np.zeros((n_users, max_len), dtype=np.int64)
    times = np.zeros((n_users, max_len), dtype=np.int64)
    labels = np.zeros((n_users, max_len), dtype=np.float32)
    for step in range(max_len):
        active = np.flatnonzero(lengths > step)
        w = weights[active]
        chosen = draw_from_topics(_sample_rows(rng, np.cumsum(w, axis=1)))
        follows = (rng.random(active.size) < config.follow_prob) & (step > 0)
        previous = items[active, step - 1] - 1
        chosen = np.where(follows, successors[previous, rng.integers(0, config.num_successors, active.size)], chosen)
        interest = w @ topic_vecs
        affinity = np.einsum("ij,ij->i", interest, item_vecs[chosen])
        p_engage = 1.0 / (1.0 + np.exp(-config.label_scale * (affinity - 0.3)))
        clock[active] += rng.exponential(rate[active]) * np.where(follows, config.follow_gap, 1.0)
        items[active, step] = chosen + 1
        times[active, step] = clock[active].astype(np.int64)
        labels[active, step] = (rng.random(active.size) < p_engage).astype(np.float32)
        fresh = rng.dirichlet(alpha, size=active.size)
        weights[active] = (1.0 - config.drift) * w + config.drift * fresh

    mask = np.arange(max_len)[None, :] < lengths[:, None]
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return InteractionLog(
        name="synthetic",
        item_ids=items[mask],
        timestamps=times[mask],
        ratings=labels[mask].copy(),
        labels=labels[mask],
        offsets=offsets,
        has_labels=True,
    )
