"""AIGC video quality models as differentiable rewards for text-to-video generators.

    >>> import reward
    >>> model = reward.load("aigc-vqa-tiny", pretrained=False)
    >>> out = model(videos, prompts)   # videos [B, T, 3, H, W] in [0, 1]
    >>> out.score, out.components
"""
from .base import VideoReward, register_architecture
from .errors import CheckpointError, RewardInputError, VideoReadError, WeightsNotFoundError
from .output import RewardOutput
from .registry import RewardSpec, list_rewards, load, register_reward, reward_spec

__all__ = [
    "VideoReward",
    "RewardOutput",
    "RewardSpec",
    "CheckpointError",
    "RewardInputError",
    "VideoReadError",
    "WeightsNotFoundError",
    "load",
    "list_rewards",
    "register_reward",
    "register_architecture",
    "reward_spec",
]
__version__ = "0.1.0"
