"""Spec-keyed run caches: round trips, stale files, and the resumable loop shared by workers."""

import json
from dataclasses import dataclass

import pytest
from mmsheaf.runs.cache import KeyedSpec, RunCache, RunsFailed, run_cached


@dataclass(frozen=True)
class Spec(KeyedSpec):
    name: str
    seed: int = 0

    def describe(self) -> dict:
        return {"name": self.name, "seed": self.seed}



def test_put_get_round_trip_with_json_types(tmp_path):
    cache = RunCache(tmp_path / "runs")
    assert cache.get(Spec("a")) is None and len(cache) == 0
    stored = cache.put(Spec("a"), {"pair": (1, 2), "x": 0.5})
    assert stored == {"spec": {"name": "a", "seed": 0}, "result": {"pair": [1, 2], "x": 0.5}}
    assert cache.get(Spec("a")) == stored and len(cache) == 1
    assert cache.get(Spec("a", seed=1)) is None


def test_a_file_of_another_spec_or_unreadable_is_reported_and_ignored(tmp_path):
    cache = RunCache(tmp_path)
    spec = Spec("a")
    cache.path(spec).parent.mkdir(parents=True, exist_ok=True)
    cache.path(spec).write_text(json.dumps({"spec": {"name": "b", "seed": 0}, "result": {}}))
    with pytest.warns(UserWarning, match="not a record of this run"):
        assert cache.get(spec) is None
    cache.path(spec).write_text("{half")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        assert cache.get(spec) is None


def test_run_cached_runs_only_what_is_missing_and_each_spec_once(tmp_path):
    cache = RunCache(tmp_path)
    calls = []

    def run(spec):
        calls.append(spec.name)
        return {"value": len(spec.name)}

    def row(spec, result):
        return {"name": spec.name, "value": result["value"]}

    cache.put(Spec("bb"), {"value": 2})
    df = run_cached([Spec("a"), Spec("bb"), Spec("a"), Spec("ccc")], cache, run, row, progress=False)
    assert calls == ["a", "ccc"]
    assert df.name.tolist() == ["a", "bb", "a", "ccc"] and df.value.tolist() == [1, 2, 1, 3]
    assert df.cached.tolist() == [False, True, True, False]
    assert df.key.tolist()[0] == Spec("a").key()
    again = run_cached([Spec("a"), Spec("ccc")], cache, run, row, progress=False)
    assert calls == ["a", "ccc"] and again.cached.all()


def test_a_run_finished_by_another_worker_meanwhile_is_read(tmp_path):
    cache = RunCache(tmp_path)
    other = RunCache(tmp_path)  # a second process on the same folder
    calls = []

    def run(spec):
        calls.append(spec.name)
        if spec.name == "first":  # while this worker trains "first", the other one finishes "second"
            other.put(Spec("second"), {"value": -1})
        return {"value": 1}

    df = run_cached([Spec("first"), Spec("second")], cache, run, lambda s, r: dict(r), progress=False)
    assert calls == ["first"] and df.value.tolist() == [1, -1] and df.cached.tolist() == [False, True]


def test_an_error_keeps_the_finished_runs(tmp_path):
    cache = RunCache(tmp_path)

    def run(spec):
        if spec.name == "bad":
            raise RuntimeError("diverged")
        return {"ok": True}

    with pytest.raises(RunsFailed, match="diverged"):
        run_cached([Spec("bad"), Spec("good")], cache, run, lambda s, r: dict(r), progress=False)
    assert cache.get(Spec("good")) is not None and cache.get(Spec("bad")) is None  # the loop went on
    assert cache.failures() == {Spec("bad").key(): "RuntimeError: diverged"}
    assert cache.failure_path(Spec("bad")).suffix == ".failed" and len(cache) == 1  # never a result


def test_keyboard_interrupt_stops_the_loop_at_once(tmp_path):
    cache, calls = RunCache(tmp_path), []

    def run(spec):
        calls.append(spec.name)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cached([Spec("a"), Spec("b")], cache, run, lambda s, r: dict(r), progress=False)
    assert calls == ["a"] and cache.failures() == {}


