"""Reward-guided fine-tuning of text-to-video diffusers pipelines: reward backprop and video DDPO."""
