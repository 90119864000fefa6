"""trl 0.23.1 integration: our rewards in trl's DDPO / AlignProp contract, and a video pipeline for its trainers.

trl's ``DDPOTrainer`` and ``AlignPropTrainer`` (last shipped in trl 0.23.1) call
``reward_fn(images, prompts, prompt_metadata) -> (rewards, metadata)``; ``make_reward_fn`` builds one
from any reward here (a name, a mixture spec such as ``"aigc-vqa:1.0,pcqa:0.5"``, or a model).
``DDPOTextToVideoPipeline`` wraps diffusers' ``TextToVideoSDPipeline`` (UNet3D + DDIM + CLIP) behind
trl's ``DDPOStableDiffusionPipeline`` interface, so trl's own trainers fine-tune a video model.
trl is imported only when the pipeline class is requested.
"""
from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import torch

from integrations.diffusers import adapter_for, to_videos
from integrations.diffusers.adapters import PromptEmbeddings
from integrations.finetune.frames import parse_frames
from integrations.finetune.log_prob import ddim_step_with_log_prob
from integrations.finetune.lora import add_lora, lora_removed, make_lora_config, read_lora_file, save_lora, set_lora_state
from integrations.finetune.sampling import DDIMPolicy, ddpo_scheduler, denoise
from reward.base import VideoReward
from reward.mixture import resolve_reward

SUPPORTED_TRL = "0.23."
INSTALL_HINT = "pip install 'aigc-video-reward[trl]'  (pins trl[diffusers]==0.23.1)"

__all__ = ["make_reward_fn", "make_flow_grpo_reward_fn", "make_prompt_fn", "require_trl", "DDPOTextToVideoPipeline"]


def require_trl() -> Any:
    """Import trl, insisting on 0.23.x: the last release with ``DDPOTrainer`` / ``AlignPropTrainer``."""
    try:
        import trl
    except ImportError as error:
        raise ImportError(f"the trl integration needs trl 0.23.1: {INSTALL_HINT}") from error
    if not str(trl.__version__).startswith(SUPPORTED_TRL):
        raise ImportError(
            f"trl {trl.__version__} is installed, but DDPOTrainer and AlignPropTrainer were removed in trl 0.24; "
            f"{INSTALL_HINT}, or use integrations.finetune's own trainers"
        )
    return trl


def as_videos(images_or_videos: Any) -> torch.Tensor:
    """Images [B, 3, H, W] (trl) or any video batch (``to_videos``: [B, T, 3, H, W], numpy, uint8) -> videos."""
    if isinstance(images_or_videos, (torch.Tensor, np.ndarray)) and images_or_videos.ndim == 4:
        return to_videos(images_or_videos[:, None])
    return to_videos(images_or_videos)


class _RewardCaller:
    """Scores images or videos with a reward, optionally on a subset of frames."""

    def __init__(self, reward: VideoReward | str, *, frames: str, device: Any, dtype: Any, seed: int):
        self.model = resolve_reward(reward, device=device, dtype=dtype).requires_grad_(False).eval()
        self.frames = parse_frames(frames)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, images_or_videos: Any, prompts: Sequence[str], *, differentiable: bool):
        videos = as_videos(images_or_videos)
        if self.frames.mode != "all":
            videos = videos[:, self.frames.resolve(videos.shape[1], generator=self.generator).to(videos.device)]
        with contextlib.nullcontext() if differentiable else torch.no_grad():
            return self.model(videos, list(prompts))


def make_reward_fn(
    reward: VideoReward | str,
    *,
    differentiable: bool = False,
    frames: str = "all",
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    futures: bool = False,
    seed: int = 0,
) -> Callable[..., tuple[Any, Any]]:
    """trl's contract: ``reward_fn(images_or_videos, prompts, prompt_metadata) -> (rewards [B], metadata)``.

    ``differentiable=True`` keeps the graph to the pixels (AlignProp). ``frames`` scores a subset
    (``"stride:2"``, ``"random:4"``...). ``futures=True`` returns completed futures, which trl's
    ``async_reward_computation=True`` requires. ``metadata`` maps each component name to its [B] scores.
    """
    caller = _RewardCaller(reward, frames=frames, device=device, dtype=dtype, seed=seed)

    def reward_fn(images_or_videos: Any, prompts: Sequence[str], prompt_metadata: Any = None):
        out = caller(images_or_videos, prompts, differentiable=differentiable)
        rewards = out.score if differentiable else out.score.detach()
        metadata = {name: value.detach() for name, value in out.components.items()}
        if not futures:
            return rewards, metadata
        done_rewards, done_metadata = Future(), Future()
        done_rewards.set_result(rewards)
        done_metadata.set_result(metadata)
        return done_rewards, done_metadata

    return reward_fn


def make_flow_grpo_reward_fn(
    reward: VideoReward | str,
    *,
    frames: str = "all",
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    seed: int = 0,
) -> Callable[..., tuple[dict[str, np.ndarray], dict]]:
    """Flow-GRPO's contract: ``fn(images, prompts, metadata, **_) -> ({"avg": [B], <component>: [B]}, {})``.

    ``"avg"`` is the (mixture) score the policy is trained on; the other keys are logged.
    """
    caller = _RewardCaller(reward, frames=frames, device=device, dtype=dtype, seed=seed)

    def reward_fn(images: Any, prompts: Sequence[str], metadata: Any = None, **_: Any):
        out = caller(images, prompts, differentiable=False)
        scores = {"avg": out.score.float().cpu().numpy()}
        scores.update({name: value.float().cpu().numpy() for name, value in out.components.items()})
        return scores, {}

    return reward_fn


def make_prompt_fn(prompts: Sequence[str], *, seed: int = 0) -> Callable[[], tuple[str, dict]]:
    """trl's ``prompt_function``: a random prompt from ``prompts`` (seeded) and empty metadata."""
    if not prompts:
        raise ValueError("make_prompt_fn needs at least one prompt")
    chooser = random.Random(seed)
    pool = list(prompts)
    return lambda: (chooser.choice(pool), {})


@functools.cache
def _pipeline_class() -> type:
    require_trl()
    from trl.models.modeling_sd_base import DDPOPipelineOutput, DDPOSchedulerOutput, DDPOStableDiffusionPipeline

    class DDPOTextToVideoPipeline(DDPOStableDiffusionPipeline):
        """``TextToVideoSDPipeline`` behind trl's DDPO/AlignProp pipeline interface.

        trl never passes a frame count or size, so they are fixed here. The scheduler becomes
        ``ddpo_scheduler``'s DDIM (no step ending at t=0 or alpha=1, which have no log-prob). ``use_lora`` trains a LoRA
        on the UNet (``lora_rank``/``lora_alpha``); otherwise the whole UNet.
        """

        def __init__(
            self,
            pipeline: Any,
            *,
            num_frames: int = 8,
            height: int | None = None,
            width: int | None = None,
            use_lora: bool = True,
            lora_rank: int = 4,
            lora_alpha: float | None = None,
        ):
            if type(pipeline).__name__ != "TextToVideoSDPipeline":
                raise TypeError(
                    f"DDPOTextToVideoPipeline wraps diffusers' TextToVideoSDPipeline (UNet3D + DDIM + CLIP), got "
                    f"{type(pipeline).__name__}; for Wan, AnimateDiff and other families use "
                    "integrations.finetune.VideoDDPOTrainer / RewardBackpropTrainer"
                )
            self.sd_pipeline = pipeline
            self.adapter = adapter_for(pipeline)
            pipeline.scheduler = ddpo_scheduler(pipeline.scheduler)[0]  # every DDIM step has a log-prob
            default_size = pipeline.unet.config.sample_size * pipeline.vae_scale_factor
            self.num_frames, self.height, self.width = num_frames, height or default_size, width or default_size
            self.use_lora = use_lora
            self.lora_config = make_lora_config(lora_rank, lora_alpha)
            pipeline.vae.requires_grad_(False)
            pipeline.text_encoder.requires_grad_(False)
            pipeline.unet.requires_grad_(not use_lora)

        # -- sampling ---------------------------------------------------------------------------
        def _sample(self, prompt_embeds, negative_prompt_embeds, num_inference_steps, guidance_scale, eta,
                    grad_from: int | None, checkpointing: bool) -> DDPOPipelineOutput:
            negative = PromptEmbeddings(negative_prompt_embeds) if negative_prompt_embeds is not None else None
            trajectory = denoise(
                self.adapter, PromptEmbeddings(prompt_embeds, negative=negative),
                num_inference_steps=num_inference_steps, num_frames=self.num_frames, height=self.height,
                width=self.width, guidance_scale=guidance_scale, generator=None,
                policy=DDIMPolicy(eta) if eta > 0 else None, grad_from=grad_from,
                gradient_checkpointing=checkpointing, record=True,
            )
            videos = self.adapter.decode(trajectory.final)
            return DDPOPipelineOutput(videos, list(trajectory.latents.unbind(1)), list(trajectory.log_probs.unbind(1)))

        @torch.no_grad()
        def __call__(self, *, prompt_embeds, negative_prompt_embeds=None, num_inference_steps=50, guidance_scale=7.5,
                     eta=1.0, output_type="pt", **_: Any) -> DDPOPipelineOutput:
            """Sample videos [B, F, 3, H, W] in [0, 1] with the latents and per-step log-probs DDPO trains on."""
            if eta <= 0:
                raise ValueError("DDPO needs stochastic DDIM steps: set sample_eta > 0 (trl's default is 1.0)")
            return self._sample(prompt_embeds, negative_prompt_embeds, num_inference_steps, guidance_scale, eta,
                                grad_from=None, checkpointing=False)

        def rgb_with_grad(self, *, prompt_embeds, negative_prompt_embeds=None, num_inference_steps=50,
                          guidance_scale=7.5, eta=0.0, truncated_backprop=True, truncated_backprop_rand=True,
                          gradient_checkpoint=True, truncated_backprop_timestep=49,
                          truncated_rand_backprop_minmax=(0, 50), output_type="pt", **_: Any) -> DDPOPipelineOutput:
            """AlignProp: videos with gradients through the steps from a (fixed or random) cutoff on."""
            if not truncated_backprop:
                grad_from = 0
            elif truncated_backprop_rand:
                grad_from = random.randint(*truncated_rand_backprop_minmax)
            else:
                grad_from = truncated_backprop_timestep
            return self._sample(prompt_embeds, negative_prompt_embeds, num_inference_steps, guidance_scale, eta,
                                grad_from=min(grad_from, num_inference_steps - 1), checkpointing=gradient_checkpoint)

        def scheduler_step(self, model_output, timestep, sample, eta=0.0, use_clipped_model_output=False,
                           generator=None, prev_sample=None) -> DDPOSchedulerOutput:
            step = ddim_step_with_log_prob(self.sd_pipeline.scheduler, model_output, timestep, sample, eta=eta,
                                           generator=generator, prev_sample=prev_sample)
            return DDPOSchedulerOutput(step.prev_sample, step.log_prob)

        # -- components trl reads -----------------------------------------------------------------
        @property
        def unet(self):
            return self.sd_pipeline.unet

        @property
        def vae(self):
            return self.sd_pipeline.vae

        @property
        def tokenizer(self):
            return self.sd_pipeline.tokenizer

        @property
        def scheduler(self):
            return self.sd_pipeline.scheduler

        @property
        def text_encoder(self):
            return self.sd_pipeline.text_encoder

        @property
        def autocast(self):
            return contextlib.nullcontext if self.use_lora else None

        def set_progress_bar_config(self, *args: Any, **kwargs: Any) -> None:
            self.sd_pipeline.set_progress_bar_config(*args, **kwargs)

        def get_trainable_layers(self):
            if self.use_lora:
                add_lora(self.sd_pipeline.unet, self.lora_config)
            return self.sd_pipeline.unet

        # -- saving ---------------------------------------------------------------------------------
        def save_pretrained(self, output_dir: str | Path) -> None:
            """The frozen base pipeline (LoRA layers taken out) plus ``pytorch_lora_weights.safetensors``."""
            with lora_removed(self.sd_pipeline.unet):
                self.sd_pipeline.save_pretrained(output_dir)
            if self.use_lora:
                save_lora(self.sd_pipeline, self.lora_config, output_dir)

        def save_checkpoint(self, models: list, weights: list, output_dir: str) -> None:
            if self.use_lora:
                save_lora(self.sd_pipeline, self.lora_config, output_dir)
            else:
                models[0].save_pretrained(Path(output_dir) / "unet")

        def load_checkpoint(self, models: list, input_dir: str) -> None:
            if self.use_lora:
                state, _ = read_lora_file(self.sd_pipeline, input_dir)
                set_lora_state(models[0], state)
            else:
                loaded = type(models[0]).from_pretrained(Path(input_dir) / "unet")
                models[0].load_state_dict(loaded.state_dict())

    return DDPOTextToVideoPipeline


def __getattr__(name: str) -> Any:
    if name == "DDPOTextToVideoPipeline":
        return _pipeline_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
