"""Video files for best-of-N: the package's own reader and writer (atomic, H.264 yuv420p, odd sides padded)."""
from reward.video.io import read_video, write_video

__all__ = ["read_video", "write_video"]
