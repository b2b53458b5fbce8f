r"""The pairwise ranking loss every recommender trains with unless it defines its own.

BPR (`Rendle et al., UAI 2009 <https://arxiv.org/abs/1205.2618>`_) on the model's *output* embeddings, with
one negative :math:`j` per positive and L2 regularisation of the batch's embeddings:

.. math::
    \mathcal{L} = \frac{1}{B}\sum_{(u, i, j)} \operatorname{softplus}(s_{uj} - s_{ui})
    + \lambda\,\frac{\lVert\mathbf{e}_u\rVert^2 + \lVert\mathbf{e}_i\rVert^2 + \lVert\mathbf{e}_j\rVert^2}{2B},
    \qquad s_{ui} = \langle \mathbf{e}_u, \mathbf{e}_i \rangle .

A model with another published objective (DropoutNet's score regression, CLCRec's contrastive terms)
overrides :meth:`mmsheaf.recsys.registry.Recommender.training_loss`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["bpr_loss"]


def bpr_loss(user_emb: Tensor, item_emb: Tensor, users: Tensor, pos: Tensor, neg: Tensor,
             reg_weight: float = 0.0) -> Tensor:  # fmt: skip
    r"""BPR loss with L2 regularisation of the batch's embeddings (see the module docstring).

    Shapes:
        - **input:** :math:`(U, D)`, :math:`(I, D)`, three :math:`(B,)` long index tensors
        - **output:** scalar
    """
    e_u, e_pos, e_neg = user_emb[users], item_emb[pos], item_emb[neg]
    loss = F.softplus((e_u * e_neg).sum(-1) - (e_u * e_pos).sum(-1)).mean()
    if reg_weight:
        reg = e_u.pow(2).sum() + e_pos.pow(2).sum() + e_neg.pow(2).sum()
        loss = loss + reg_weight * reg / (2 * users.numel())
    return loss
