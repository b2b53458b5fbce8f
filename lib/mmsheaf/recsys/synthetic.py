"""Planted-group interactions: a tiny multimodal recommendation data set with a known structure.

.. code-block:: python

    data = planted_interactions(num_users=60, num_items=80, num_groups=4, seed=0)

Users and items belong to latent groups; a user interacts mostly with items of its own group. Item text and
tabular features and user tabular features are noisy indicators of the group, so both the interaction graph
and the content carry the signal. Used by the unit tests and the notebooks' smoke profile.
"""

from __future__ import annotations

import numpy as np
import torch

from mmsheaf.data.interactions import InteractionData

__all__ = ["planted_interactions"]


def _split_sizes(n: int) -> tuple[int, int, int]:
    """Per-user ``(train, val, test)`` sizes in the ratio 8:1:1, at least one of each."""
    n_test = max(1, round(0.1 * n))
    n_val = max(1, round(0.1 * n))
    return n - n_val - n_test, n_val, n_test


def planted_interactions(
    num_users: int = 60,
    num_items: int = 80,
    num_groups: int = 4,
    interactions_per_user: int = 12,
    noise: float = 0.1,
    seed: int = 0,
    text_dim: int = 8,
    tab_dim: int = 5,
    feature_noise: float = 0.5,
) -> InteractionData:
    r"""Interactions of users and items in ``num_groups`` planted groups, with group-revealing features.

    User :math:`u` is in group :math:`u \bmod G` and item :math:`i` in group :math:`i \bmod G`. Each user
    interacts with ``interactions_per_user`` distinct items drawn with probability proportional to
    :math:`(1 - \text{noise})/|\text{own group}| + \text{noise}/I` (mostly its own group's items, a
    ``noise`` fraction uniformly). Each user's interactions are split 8:1:1 into train/val/test at random
    (at least one each). Features are a random per-group centroid (standard normal) plus Gaussian noise of
    standard deviation ``feature_noise``: items get ``"text"`` :math:`(I, \text{text\_dim})` and
    ``"tabular"`` :math:`(I, \text{tab\_dim})`, users get ``"tabular"`` :math:`(U, \text{tab\_dim})`; every
    modality (ids included) is observed everywhere. ``item_labels`` is the one-hot group of each item.

    Raises:
        ValueError: sizes that cannot hold the requested interactions (``interactions_per_user`` must lie
            in ``[3, num_items]`` and every group must have an item).
    """
    if num_groups < 1 or num_items < num_groups or num_users < 1:
        raise ValueError(f"need num_users >= 1 and num_items >= num_groups >= 1, got {num_users=}, "
                         f"{num_items=}, {num_groups=}.")  # fmt: skip
    if not 3 <= interactions_per_user <= num_items:
        raise ValueError(f"interactions_per_user must lie in [3, num_items={num_items}] (one each for "
                         f"train/val/test), got {interactions_per_user}.")  # fmt: skip
    if not 0.0 <= noise <= 1.0 or feature_noise < 0 or text_dim < 1 or tab_dim < 1:
        raise ValueError("need 0 <= noise <= 1, feature_noise >= 0 and text_dim, tab_dim >= 1.")
    rng = np.random.default_rng(seed)
    user_group = np.arange(num_users) % num_groups
    item_group = np.arange(num_items) % num_groups
    group_size = np.bincount(item_group, minlength=num_groups)

    n_train, n_val, _ = _split_sizes(interactions_per_user)
    splits: dict[str, list[tuple[int, int]]] = {"train": [], "val": [], "test": []}
    for u in range(num_users):
        own = item_group == user_group[u]
        p = (1.0 - noise) * own / group_size[user_group[u]] + noise / num_items
        items = rng.choice(num_items, size=interactions_per_user, replace=False, p=p / p.sum())
        for name, part in zip(
            ("train", "val", "test"), np.split(items, [n_train, n_train + n_val]), strict=True
        ):
            splits[name].extend((u, int(i)) for i in part)

    def edges(pairs: list[tuple[int, int]]) -> torch.Tensor:
        return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t().contiguous()

    def features(groups: np.ndarray, dim: int) -> torch.Tensor:
        centroids = rng.standard_normal((num_groups, dim))
        x = centroids[groups] + feature_noise * rng.standard_normal((groups.size, dim))
        return torch.from_numpy(x).float()

    item_text = features(item_group, text_dim)
    item_tab = features(item_group, tab_dim)
    user_tab = features(user_group, tab_dim)
    ones = lambda n: torch.ones(n, dtype=torch.bool)
    return InteractionData(
        name="planted",
        num_users=num_users,
        num_items=num_items,
        train=edges(splits["train"]),
        val=edges(splits["val"]),
        test=edges(splits["test"]),
        user_features={"tabular": user_tab},
        item_features={"text": item_text, "tabular": item_tab},
        user_mask={"id": ones(num_users), "tabular": ones(num_users)},
        item_mask={"id": ones(num_items), "text": ones(num_items), "tabular": ones(num_items)},
        item_labels=torch.nn.functional.one_hot(torch.from_numpy(item_group), num_groups).float(),
        label_names=tuple(f"group {g}" for g in range(num_groups)),
    )
