"""Memory measures for CPU runs that can tell training steps apart.

``ru_maxrss`` is a high-water mark over the whole process: loading a model (SmolLM2's GGUF file
is de-quantised through float copies) can set it before training starts, so it cannot tell rules
apart. Two measures that can:

- :func:`reset_peak_rss` / :func:`peak_rss`: Linux resets the high-water mark (VmHWM) when "5"
  is written to ``/proc/self/clear_refs``; reset after setup, it is the peak of training alone
  (weights, optimizer state, libraries and every temporary buffer included).
- :class:`SavedTensors`: the bytes autograd holds for backward passes (the activations of the
  graphs alive), counted through ``torch.autograd.graph.saved_tensors_hooks``: a storage is
  counted once while any saved tensor refers to it, and never when it belongs to a parameter or
  buffer (weights that a matrix product saves are not activations). Forward passes without grad
  save nothing, so their transient buffers show in the RSS only.
"""

from __future__ import annotations

from pathlib import Path

STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int:
    line = next(x for x in STATUS.read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def reset_peak_rss() -> bool:
    """Start the peak-RSS record afresh (Linux ≥ 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """Bytes: the resident-set high-water mark since the last :func:`reset_peak_rss`."""
    return 1024 * _status_kib("VmHWM")


def current_rss() -> int:
    return 1024 * _status_kib("VmRSS")


class _Held:
    """One saved tensor; counted off when autograd drops it (the graph is freed)."""

    __slots__ = ("owner", "key", "tensor")

    def __init__(self, owner: SavedTensors, key: int, tensor):
        self.owner, self.key, self.tensor = owner, key, tensor

    def __del__(self):
        self.owner._drop(self.key)


class SavedTensors:
    """``with SavedTensors(model) as s: …``: ``s.peak`` is the most bytes of activations held
    for backward at once (see the module docstring); ``s.live`` the bytes held now;
    ``s.step_peak`` the peak since the caller last set it (to ``s.live``)."""

    def __init__(self, model):
        import torch

        self.weights = {t.untyped_storage().data_ptr() for t in model.parameters()}
        self.weights |= {t.untyped_storage().data_ptr() for t in model.buffers()}
        self.refs: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.live = self.peak = 0
        self.step_peak = 0  # like peak, but a caller may restart it (per step)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, t):
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key in self.weights or storage.nbytes() == 0:
            return t
        if self.refs.get(key, 0) == 0:
            self.size[key] = storage.nbytes()
            self.live += self.size[key]
            self.peak = max(self.peak, self.live)
            self.step_peak = max(self.step_peak, self.live)
        self.refs[key] = self.refs.get(key, 0) + 1
        return _Held(self, key, t)

    @staticmethod
    def _unpack(held):
        return held.tensor if isinstance(held, _Held) else held

    def _drop(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.live -= self.size.pop(key)
            del self.refs[key]

    def __enter__(self):
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
