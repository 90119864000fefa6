"""Score sampled videos on a worker thread so the reward overlaps the next sampling batch."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from reward.output import RewardOutput

RewardCall = Callable[[torch.Tensor, Sequence[str]], RewardOutput]


class AsyncRewardScorer:
    """``submit(videos, prompts)`` returns a future of the detached ``RewardOutput``.

    With ``max_workers=0`` scoring happens inline (same results, no thread): handy for debugging.
    Torch releases the GIL inside kernels, so the reward and the denoiser really run concurrently.
    """

    def __init__(self, reward: RewardCall, max_workers: int = 1):
        self.reward = reward
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="reward") if max_workers else None

    def _score(self, videos: torch.Tensor, prompts: list[str]) -> RewardOutput:
        with torch.no_grad():
            return self.reward(videos, prompts).detach()

    def submit(self, videos: torch.Tensor, prompts: Sequence[str]) -> Future:
        videos, prompts = videos.detach(), list(prompts)
        if self.executor is not None:
            return self.executor.submit(self._score, videos, prompts)
        future: Future = Future()
        try:
            future.set_result(self._score(videos, prompts))
        except Exception as error:  # delivered through the future, exactly like the threaded path
            future.set_exception(error)
        return future

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    def __enter__(self) -> "AsyncRewardScorer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
