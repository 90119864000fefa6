"""The frozen hybrid prompt encoder: open_clip text towers (no vision towers) + a bounded embedding cache."""
from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import load_state_dict_strict, load_torch_checkpoint
from ..errors import WeightsNotFoundError
from ..precision import backbone_autocast
from ..transfer import to_device
from ..weights import resolve_file
from .config import TextTowerConfig

#: open_clip's names for the weights file in a hub repo, safetensors first.
OPEN_CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
#: Top-level text-tower keys of open_clip's CLIP checkpoints (ViT-H-14-quickgelu/dfn5b, ...).
CLIP_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
#: Prefix of the text tower in open_clip's CustomTextCLIP checkpoints (EVA-CLIP, ...).
CUSTOM_TEXT_PREFIX = "text."


class PromptEmbeddingCache:
    """A bounded LRU map ``(text, device, dtype) -> embedding`` with hit/miss counters."""

    def __init__(self, max_size: int):
        self.max_size = int(max_size)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> torch.Tensor | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: torch.Tensor) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


@functools.lru_cache(maxsize=None)
def open_clip_tokenizer(model_name: str, context_length: int):
    """open_clip's bundled tokenizer for ``model_name`` (built once per process; no network)."""
    import open_clip

    return open_clip.get_tokenizer(model_name, context_length=context_length)


def build_text_tower(config: TextTowerConfig) -> nn.Module:
    """Build only the text transformer of an open_clip model config, with random weights."""
    from open_clip.model import _build_text_tower

    config = config.resolve()
    if config.text_cfg.get("hf_model_name") or config.text_cfg.get("hf_tokenizer_name"):
        raise ValueError(
            f"{config.model_name!r} uses a Hugging Face text model or tokenizer; PCQA supports open_clip's own "
            "TextTransformer towers (e.g. ViT-H-14-quickgelu, EVA02-L-14, EVA02-B-16, EVA01-g-14)."
        )
    return _build_text_tower(config.embed_dim, config.text_cfg, quick_gelu=config.quick_gelu)


def resolve_text_checkpoint(config: TextTowerConfig) -> Path:
    """Local file for ``config.pretrained``: an open_clip tag (fetched from its hub repo) or a path / hub id / URL."""
    import open_clip

    what = f"{config.model_name} text tower weights ({config.pretrained})"
    if not config.pretrained:
        raise WeightsNotFoundError(
            f"text tower {config.model_name!r} has no pretrained source; set TextTowerConfig.pretrained to one of "
            f"{open_clip.list_pretrained_tags_by_model(config.model_name)} or to a checkpoint path."
        )
    source = open_clip.get_pretrained_cfg(config.model_name, config.pretrained)
    if not source:
        return resolve_file(config.pretrained, what=what)
    if not source.get("hf_hub"):
        return resolve_file(source["url"], what=what)
    owner, repo, *in_repo = source["hf_hub"].strip("/").split("/")
    names = ["/".join(in_repo)] if in_repo else list(OPEN_CLIP_WEIGHT_FILES)
    failures = []
    for name in names:
        try:
            return resolve_file(f"{owner}/{repo}/{name}", what=what)
        except WeightsNotFoundError as error:
            failures.append(str(error))
    raise WeightsNotFoundError(
        f"could not get {what} from hub repo {owner}/{repo}: {failures[-1]} Download the open_clip checkpoint "
        "elsewhere and pass text_weights=[one local file per text tower] (or set TextTowerConfig.pretrained to it)."
    )


def text_key_map(names: Sequence[str]) -> dict[str, str]:
    """Checkpoint key -> text-tower key, for open_clip CLIP or CustomTextCLIP checkpoints (vision keys dropped)."""
    bare = {n: n[len("module."):] if n.startswith("module.") else n for n in names}
    custom = {n: b[len(CUSTOM_TEXT_PREFIX):] for n, b in bare.items() if b.startswith(CUSTOM_TEXT_PREFIX)}
    if custom:
        return custom
    return {n: b for n, b in bare.items() if b.startswith(CLIP_TEXT_PREFIXES)}


def read_text_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The text-tower tensors of an open_clip checkpoint; safetensors files are read key by key."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return {new: handle.get_tensor(old) for old, new in text_key_map(list(handle.keys())).items()}
    state = load_torch_checkpoint(path)
    return {new: state[old] for old, new in text_key_map(list(state)).items()}


def load_text_weights(tower: nn.Module, path: str | Path) -> None:
    """Load a text tower strictly from a full open_clip checkpoint, ignoring its vision tower."""
    state = read_text_weights(path)
    if not state:
        raise WeightsNotFoundError(
            f"{path} holds no open_clip text-tower keys (expected 'text.*' or 'transformer.*', 'token_embedding.*'); "
            "is it an open_clip CLIP checkpoint?"
        )
    load_state_dict_strict(tower, state, source=str(path))


def _clear_prompt_cache(encoder: "HybridPromptEncoder", incompatible_keys: object) -> None:
    encoder.cache.clear()


class HybridPromptEncoder(nn.Module):
    """Frozen open_clip text towers whose L2-normalised pooled outputs are concatenated; cached per prompt.

    The towers never receive gradients and stay in eval mode even after ``.train()``. The cache
    key is ``(prompt, device, compute dtype)``; loading weights clears it.
    """

    #: A backbone for reward.precision.backbone_modules (low-precision weight storage, compilation).
    is_backbone = True

    def __init__(self, towers: Sequence[TextTowerConfig], cache_size: int = 4096):
        super().__init__()
        self.tower_configs = [tower.resolve() for tower in towers]
        self.towers = nn.ModuleList(build_text_tower(tower) for tower in self.tower_configs)
        self.towers.requires_grad_(False)
        self.towers.eval()
        self.cache = PromptEmbeddingCache(cache_size)
        self.register_load_state_dict_post_hook(_clear_prompt_cache)

    @property
    def embed_dim(self) -> int:
        return sum(tower.embed_dim for tower in self.tower_configs)

    def train(self, mode: bool = True) -> "HybridPromptEncoder":
        super().train(mode)
        self.towers.eval()
        return self

    def load_pretrained(self, files: Sequence[str | Path] | None = None) -> None:
        """Load every tower from its ``pretrained`` source (or from ``files``, one per tower)."""
        files = files or [resolve_text_checkpoint(tower) for tower in self.tower_configs]
        for tower, path in zip(self.towers, files, strict=True):
            load_text_weights(tower, path)
        self.cache.clear()

    def forward(self, prompts: Sequence[str], *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Embeddings ``[B, embed_dim]`` (fp32, no grad) of ``prompts``; each distinct uncached prompt is encoded once."""
        weight = next(self.towers.parameters())
        compute = dtype if dtype not in (None, torch.float32) else weight.dtype
        found: dict[str, torch.Tensor] = {}
        for prompt in dict.fromkeys(prompts):
            cached = self.cache.get((prompt, str(weight.device), compute))
            if cached is not None:
                found[prompt] = cached
        missing = [prompt for prompt in dict.fromkeys(prompts) if prompt not in found]
        if missing:
            for prompt, embedding in zip(missing, self._encode(missing, weight.device, dtype)):
                self.cache.put((prompt, str(weight.device), compute), embedding)
                found[prompt] = embedding
        return torch.stack([found[prompt] for prompt in prompts])

    def _encode(self, prompts: list[str], device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
        parts = []
        with torch.inference_mode(False), torch.no_grad(), backbone_autocast(device, dtype):
            for config, tower in zip(self.tower_configs, self.towers):
                tokens = open_clip_tokenizer(config.model_name, config.text_cfg["context_length"])(prompts)
                parts.append(F.normalize(tower(to_device(tokens, device)).float(), dim=-1))
        return torch.cat(parts, dim=-1)
