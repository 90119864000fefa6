"""DOVER's technical backbone: a 3-D Swin transformer with gated relative position bias (GRPB).

Parameter names follow ``technical_backbone.*`` in DOVER.pth, so loading is a prefix strip.
Tensors stay channels-last ``[B, D, H, W, C]`` inside; windows are gathered by one index (cyclic shift included)
and attended through ``scaled_dot_product_attention`` with the position biases and shift mask as one mask.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, calculate_drop_path_rates
from torch import nn

from ..precision import maybe_checkpoint

Size3 = tuple[int, int, int]

#: Logit added between tokens that a cyclic shift brought together from different regions.
SHIFT_MASK_VALUE = -100.0
#: Without autograd, windows attend in groups whose additive mask stays within this many bytes (DOVER's first stage
#: builds a 236 MB mask per clip at once otherwise); each window's attention is computed as it would be in one call.
MASK_CHUNK_BYTES = 32 << 20


@dataclass
class Swin3DConfig:
    """Sizes of the technical Swin-3D; the defaults are the public DOVER / FAST-VQA Swin-T."""

    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    patch_size: Size3 = (2, 4, 4)
    window_size: Size3 = (8, 7, 7)
    mlp_ratio: float = 4.0
    frag_biases: tuple[bool, ...] = (True, True, True, False)
    drop_path_rate: float = 0.1
    in_channels: int = 3

    def __post_init__(self) -> None:
        self.depths = tuple(int(d) for d in self.depths)
        self.num_heads = tuple(int(h) for h in self.num_heads)
        self.patch_size = tuple(int(p) for p in self.patch_size)
        self.window_size = tuple(int(w) for w in self.window_size)
        self.frag_biases = tuple(bool(f) for f in self.frag_biases)
        if not len(self.depths) == len(self.num_heads) == len(self.frag_biases):
            raise ValueError(
                f"depths {self.depths}, num_heads {self.num_heads} and frag_biases {self.frag_biases} "
                "must have one entry per stage"
            )

    @property
    def num_features(self) -> int:
        """Channels of the output feature map."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)


def clip_window(size: Size3, window: Size3, shift: Size3) -> tuple[Size3, Size3]:
    """Shrink the window to the feature size on axes where it does not fit; no shift on those axes."""
    clipped = tuple(s if s <= w else w for s, w in zip(size, window))
    shifts = tuple(0 if s <= w else sh for s, w, sh in zip(size, window, shift))
    return clipped, shifts


def relative_position_index(window: Size3) -> torch.Tensor:
    """Standard Swin-3D index into the bias table for every token pair of a window (d-major order)."""
    coords = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij")).flatten(1)
    delta = coords[:, :, None] - coords[:, None, :]
    d, h, w = (delta[i] + window[i] - 1 for i in range(3))
    return (d * (2 * window[1] - 1) + h) * (2 * window[2] - 1) + w


def partition_windows(x: torch.Tensor, window: Size3) -> torch.Tensor:
    """``[B, D, H, W, C]`` -> ``[B, windows, tokens per window, C]`` (window-major, d-major inside)."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // window[0], window[0], h // window[1], window[1], w // window[2], window[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, -1, window[0] * window[1] * window[2], c)


def cached_table(build: Callable[..., Any]) -> Callable[..., Any]:
    """Memoise a constant table per input size and device, built as a normal (non-inference) tensor.

    Tables first built under ``torch.inference_mode`` would otherwise break later autograd calls.
    """

    @functools.lru_cache(maxsize=64)
    @functools.wraps(build)
    def cached(*args):
        with torch.inference_mode(False), torch.no_grad():
            return build(*args)

    return cached


def _region_labels(size: int, window: int, shift: int) -> torch.Tensor:
    """Per-position region of one axis for the shifted-window mask (0 everywhere without shift)."""
    position = torch.arange(size)
    if shift == 0:
        return torch.zeros(size, dtype=torch.long)
    return (position >= size - window).long() + (position >= size - shift).long()


@cached_table
def shift_mask(size: Size3, window: Size3, shift: Size3, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[windows, N, N]`` mask: -100 between tokens of different pre-shift regions, else 0."""
    d, h, w = (_region_labels(s, wi, sh) for s, wi, sh in zip(size, window, shift))
    labels = (d[:, None, None] * 9 + h[None, :, None] * 3 + w[None, None, :]).to(device)
    windows = partition_windows(labels[None, ..., None], window)[0, ..., 0]
    different = windows[:, :, None] != windows[:, None, :]
    return (different.float() * SHIFT_MASK_VALUE).to(dtype)


@cached_table
def fragment_gate(size: Size3, window: Size3, shift: Size3, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """GRPB gate ``[windows, N, N]``: L1 distance of fragment ids between the tokens of a window.

    The fragment id of a token is a 1 x Wh x Ww grid of ids stretched (nearest) over the padded
    feature grid, rolled by -shift like the tokens. The gate is an integer 0, 1, 2, ... (not clipped).
    """
    _, height, width = size
    id_h = torch.arange(height) * window[1] // height
    id_w = torch.arange(width) * window[2] // width
    ids = torch.stack(torch.broadcast_tensors(id_h[:, None], id_w[None, :]), dim=-1)
    ids = torch.roll(ids, shifts=(-shift[1], -shift[2]), dims=(0, 1))
    ids = ids[None].expand(size[0], -1, -1, -1).contiguous().to(device)
    windows = partition_windows(ids[None], window)[0]
    return (windows[:, :, None] - windows[:, None, :]).abs().sum(-1).to(dtype)


@cached_table
def window_order(size: Size3, padded: Size3, window: Size3, shift: Size3, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather indices between a grid and its windows: ``order`` [windows * N] lists, in window order, the flat
    position in the ``padded`` grid of every token after the cyclic shift by -``shift``; ``restore`` [D*H*W]
    gives, for every position of the unpadded ``size`` grid, its row in window order (the shift undone and the
    padding cropped). One ``index_select`` each way replaces roll + partition and merge + roll + crop."""
    positions = torch.arange(padded[0] * padded[1] * padded[2]).view(1, *padded, 1)
    if any(shift):
        positions = torch.roll(positions, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    order = partition_windows(positions, window).reshape(-1)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel())
    restore = inverse.view(padded)[: size[0], : size[1], : size[2]].reshape(-1)
    return order.to(device), restore.to(device)


class WindowLayout(NamedTuple):
    """How the blocks of a stage with one cyclic ``shift`` tile a ``size`` grid: the (clipped) ``window``, the
    zero ``pads`` (D, H, W) up to window multiples, the gather indices of :func:`window_order`, and the parts
    of the attention mask that depend on the geometry only: the GRPB ``gate`` and the ``shift_mask``
    ([windows, N, N] each, in the attention's compute dtype; None where unused). Built once per stage and
    forward, shared by its blocks."""

    window: Size3
    pads: Size3
    order: torch.Tensor
    restore: torch.Tensor
    gate: torch.Tensor | None
    shift_mask: torch.Tensor | None
    dtype: torch.dtype

    @classmethod
    def build(
        cls, size: Size3, window: Size3, shift: Size3, fragment_bias: bool, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> "WindowLayout":
        window, shift = clip_window(size, window, shift)
        pads = tuple((-s) % w for s, w in zip(size, window))
        padded = tuple(s + p for s, p in zip(size, pads))
        geometry = (padded, window, shift, device, dtype)
        order, restore = window_order(size, padded, window, shift, device)
        gate = fragment_gate(*geometry) if fragment_bias else None
        mask = shift_mask(*geometry) if any(shift) else None
        return cls(window, pads, order, restore, gate, mask, dtype)


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside windows with relative (and gated fragment) position bias, through
    ``scaled_dot_product_attention`` with the biases and the shift mask as one additive mask."""

    def __init__(self, dim: int, num_heads: int, window: Size3, fragment_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        rows = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        if fragment_bias:
            self.fragment_position_bias_table = nn.Parameter(torch.zeros(rows, num_heads))
            nn.init.trunc_normal_(self.fragment_position_bias_table, std=0.02)
        else:
            self.fragment_position_bias_table = None
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=True)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self, table: torch.Tensor, tokens: int, dtype: torch.dtype) -> torch.Tensor:
        """``[heads, N, N]`` bias of a window of ``tokens`` in ``dtype``; like the public model, a clipped window
        reads the first ``N`` rows and columns of the full index. Contiguous, so the mask built from it is too (the
        fused kernel would copy a strided mask)."""
        index = self.relative_position_index[:tokens, :tokens].reshape(-1)
        return table.to(dtype).t().index_select(1, index).view(-1, tokens, tokens)

    def attention_mask(self, layout: WindowLayout, tokens: int, windows: slice = slice(None)) -> torch.Tensor:
        """The additive mask: RPB * gate + FPB * (1 - gate) + shift mask, ``[windows, heads, N, N]`` (the plain
        RPB ``[1, heads, N, N]`` without fragment table or shift), in at most two passes over the mask, in the
        dtype of the layout's tables (the attention's compute dtype: no cast of the mask under autocast).
        ``windows`` selects the rows of a per-window mask."""
        relative = self.position_bias(self.relative_position_bias_table, tokens, layout.dtype)
        shift = None if layout.shift_mask is None else layout.shift_mask[windows, None]
        if self.fragment_position_bias_table is None:
            return relative[None] if shift is None else relative + shift
        fragment = self.position_bias(self.fragment_position_bias_table, tokens, layout.dtype)
        mask = torch.addcmul(fragment, layout.gate[windows, None], relative - fragment)
        return mask if shift is None else mask.add_(shift)

    def window_groups(self, layout: WindowLayout, n_windows: int, tokens: int) -> list[slice]:
        """Windows attended together: all at once, or (without autograd, with a per-window mask) groups whose mask
        stays within ``MASK_CHUNK_BYTES``."""
        per_window = self.num_heads * tokens * tokens * torch.empty((), dtype=layout.dtype).element_size()
        per_window_mask = layout.gate is not None or layout.shift_mask is not None
        if torch.is_grad_enabled() or not per_window_mask or per_window * n_windows <= MASK_CHUNK_BYTES:
            return [slice(None)]
        step = max(1, MASK_CHUNK_BYTES // per_window)
        return [slice(start, start + step) for start in range(0, n_windows, step)]

    def forward(self, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        """``x`` [B, windows, N, C] tokens of the windows laid out by ``layout`` -> [B, windows, N, C]."""
        b, n_windows, tokens, channels = x.shape
        qkv = self.qkv(x).view(b, n_windows, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # [B, windows, heads, N, head_dim] each
        groups = self.window_groups(layout, n_windows, tokens)
        out = torch.cat([self.attend(q[:, group], k[:, group], v[:, group], self.attention_mask(layout, tokens, group))
                         for group in groups], dim=1) if len(groups) > 1 else self.attend(q, k, v, self.attention_mask(layout, tokens))
        return self.proj(out.reshape(b, n_windows, tokens, channels))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``q``, ``k``, ``v`` [B, windows, heads, N, head_dim] under ``mask`` -> [B, windows, N, heads, head_dim]."""
        b, n_windows, heads, tokens, _ = q.shape
        if mask.shape[0] == 1 or b == 1:  # one call over every window of the batch
            out = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), attn_mask=mask)
            return out.view(b, n_windows, heads, tokens, -1).transpose(2, 3)
        # a per-window mask is shared by the batch: one call per item instead of a B-times larger mask
        return torch.stack([F.scaled_dot_product_attention(q[i], k[i], v[i], attn_mask=mask).transpose(1, 2) for i in range(b)])


class SwinBlock3D(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, each with a residual and stochastic depth."""

    def __init__(
        self, dim: int, num_heads: int, window: Size3, shift: Size3, fragment_bias: bool, mlp_ratio: float, drop_path: float
    ):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, num_heads, window, fragment_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def windowed_attention(self, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        """Zero-pad to window multiples, gather the (shifted) windows, attend, gather back to the grid."""
        b, d, h, w, c = x.shape
        if any(layout.pads):
            x = F.pad(x, (0, 0, 0, layout.pads[2], 0, layout.pads[1], 0, layout.pads[0]))
        tokens = layout.window[0] * layout.window[1] * layout.window[2]
        windows = x.reshape(b, -1, c).index_select(1, layout.order).view(b, -1, tokens, c)
        out = self.attn(windows, layout).reshape(b, -1, c)
        return out.index_select(1, layout.restore).view(b, d, h, w, c)

    def forward(self, x: torch.Tensor, layout: WindowLayout) -> torch.Tensor:
        x = residual_add(x, self.drop_path(self.windowed_attention(self.norm1(x), layout)))
        return residual_add(x, self.drop_path(self.mlp(self.norm2(x))))


def residual_add(x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``x + branch``, written into ``branch`` (a fresh activation no backward reads) when that keeps the dtype:
    one large allocation less per residual."""
    if branch.dtype == torch.promote_types(x.dtype, branch.dtype) and branch.shape == x.shape:
        return branch.add_(x)
    return x + branch


class PatchMerging3D(nn.Module):
    """Halve H and W: concatenate 2x2 neighbours (h even/w even, odd/even, even/odd, odd/odd) and project."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, x.shape[3] % 2, 0, x.shape[2] % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class PatchEmbed3D(nn.Module):
    """Non-overlapping 3-D patches (zero-padded up to the patch size), then LayerNorm over channels."""

    def __init__(self, patch: Size3, in_channels: int, dim: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T, H, W]`` -> channels-last ``[B, T', H', W', dim]``."""
        pads = [(-s) % p for s, p in zip(x.shape[2:], self.patch)]
        x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]))
        return self.norm(self.proj(x).permute(0, 2, 3, 4, 1))


class SwinStage3D(nn.Module):
    """Blocks alternating plain and shifted windows, then optional patch merging."""

    def __init__(self, config: Swin3DConfig, stage: int, drop_paths: list[float]):
        super().__init__()
        dim = config.embed_dim * 2**stage
        half_window = tuple(w // 2 for w in config.window_size)
        self.blocks = nn.ModuleList(
            SwinBlock3D(
                dim,
                config.num_heads[stage],
                config.window_size,
                half_window if index % 2 else (0, 0, 0),
                config.frag_biases[stage],
                config.mlp_ratio,
                drop_paths[index],
            )
            for index in range(config.depths[stage])
        )
        self.downsample = PatchMerging3D(dim) if stage < len(config.depths) - 1 else None

    def forward(self, x: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
        size = tuple(x.shape[1:4])
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        layouts = {
            block.shift: WindowLayout.build(
                size, block.window, block.shift, block.attn.fragment_position_bias_table is not None, x.device, dtype
            )
            for block in self.blocks
        }
        for block in self.blocks:
            x = maybe_checkpoint(block, x, layouts[block.shift], enabled=checkpointing)
        return x if self.downsample is None else self.downsample(x)


class SwinTransformer3D(nn.Module):
    """Technical backbone: ``[N, 3, T, H, W]`` normalised clips -> features ``[N, C, T/2, H/32, W/32]``."""

    #: A backbone for reward.precision.backbone_modules (low-precision weight storage, compilation).
    is_backbone = True

    def __init__(self, config: Swin3DConfig):
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        self.patch_embed = PatchEmbed3D(config.patch_size, config.in_channels, config.embed_dim)
        rates = calculate_drop_path_rates(config.drop_path_rate, list(config.depths), stagewise=True)
        self.layers = nn.ModuleList(SwinStage3D(config, s, rates[s]) for s in range(len(config.depths)))
        self.norm = nn.LayerNorm(config.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x, self.gradient_checkpointing)
        return self.norm(x).permute(0, 4, 1, 2, 3)
