"""Video input/output (whole, or only the frames a reward plans) and the differentiable views (frame sampling,
fragments, resizing, normalisation)."""
from ..frame_plan import FramePlan, SparseVideo
from .fragments import FragmentOffsets, fragment_grid, fragment_offsets, sample_fragments
from .io import read_planned, read_video, read_video_uint8, write_image, write_video
from .normalize import DOVER_MEAN, DOVER_STD, normalize_levels
from .resize import aesthetic_resize, resize_frames, upsample_scale, upsample_small_video
from .sampling import dover_frame_indices, dover_segment_starts, uniform_frame_indices
from .views import (
    AestheticView,
    TechnicalView,
    aesthetic_frame_indices,
    aesthetic_view,
    technical_frame_indices,
    technical_view,
)

__all__ = [
    "AestheticView",
    "DOVER_MEAN",
    "DOVER_STD",
    "FragmentOffsets",
    "FramePlan",
    "SparseVideo",
    "TechnicalView",
    "aesthetic_frame_indices",
    "aesthetic_resize",
    "aesthetic_view",
    "dover_frame_indices",
    "dover_segment_starts",
    "fragment_grid",
    "fragment_offsets",
    "normalize_levels",
    "read_planned",
    "read_video",
    "read_video_uint8",
    "resize_frames",
    "sample_fragments",
    "technical_frame_indices",
    "technical_view",
    "uniform_frame_indices",
    "upsample_scale",
    "upsample_small_video",
    "write_image",
    "write_video",
]
