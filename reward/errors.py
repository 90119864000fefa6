"""Exception types that name the problem and the fix."""
from __future__ import annotations


class RewardInputError(ValueError):
    """A video or prompt given to a reward has the wrong shape, type, range or content."""


class CheckpointError(RuntimeError):
    """A checkpoint does not match the model it is being loaded into."""


class WeightsNotFoundError(FileNotFoundError):
    """Weights could not be found locally, on the hub, or at a URL."""


class VideoReadError(RewardInputError, OSError):
    """A video file or frame folder is missing, unreadable, or holds no frames."""


class ScoringInputError(ValueError):
    """A list of videos to score (paths, globs, a prompts file or a manifest) cannot be used as given."""


class DatasetError(ValueError):
    """A training or evaluation dataset is malformed, or some of its files are missing or unreadable."""
