"""Scoring many videos: input discovery, worker decoding, shape batching, resumable sharded results.

    >>> from reward.scoring import discover_videos, attach_prompts, score_videos
    >>> items = attach_prompts(discover_videos(["videos/"]), prompt="a red fox in snow")
    >>> run = score_videos(reward.load("dover"), items, out="results.jsonl", resume=True)
    >>> run.summary.stats["score"].mean
"""
from .dataset import Decoded, VideoDataset, decode_in_workers
from .inputs import VideoItem, attach_prompts, discover_videos, read_prompts_file
from .manifest import read_manifest
from .results import read_records
from .runner import ScoringRun, score_videos
from .sharding import Processes
from .summary import ScoringSummary, summarize

__all__ = [
    "Decoded",
    "Processes",
    "ScoringRun",
    "ScoringSummary",
    "VideoDataset",
    "VideoItem",
    "attach_prompts",
    "decode_in_workers",
    "discover_videos",
    "read_manifest",
    "read_prompts_file",
    "read_records",
    "score_videos",
    "summarize",
]
