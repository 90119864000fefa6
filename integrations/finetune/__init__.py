"""Reward-guided fine-tuning of text-to-video diffusers pipelines: reward backprop and video DDPO."""
from .backprop import BackpropConfig, RewardBackpropTrainer
from .ddpo import DDPOConfig, VideoDDPOTrainer
from .guard import RewardHackingGuard, RewardHackingWarning
from .lora import load_lora, save_lora
from .stat_tracker import PerPromptStatTracker
from .trainer import FinetuneConfig

__all__ = [
    "BackpropConfig",
    "DDPOConfig",
    "FinetuneConfig",
    "PerPromptStatTracker",
    "RewardBackpropTrainer",
    "RewardHackingGuard",
    "RewardHackingWarning",
    "VideoDDPOTrainer",
    "load_lora",
    "save_lora",
]
