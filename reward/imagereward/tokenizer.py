"""ImageReward's tokenizer: bert-base-uncased WordPiece plus [DEC] (bos) and [ENC], 35 tokens, [CLS] first.

The vocabulary comes from the hub (``bert-base-uncased``) at run time, or from a local folder or
``vocab.txt``; ``TINY_VOCAB`` names a small character-level vocabulary built in memory for the tiny
presets, so they run with no files at all.
"""
from __future__ import annotations

import os
import string
from collections.abc import Sequence
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from transformers import BertTokenizer, PreTrainedTokenizerBase

from ..errors import WeightsNotFoundError
from ..transfer import to_device

#: Where the official vocabulary comes from.
HUB_TOKENIZER = "bert-base-uncased"
#: Source name of the in-memory character vocabulary of the tiny presets.
TINY_VOCAB = "tiny-characters"
#: ImageReward pads and truncates every prompt to this many tokens.
MAX_LENGTH = 35
DECODER_TOKEN = "[DEC]"
ENCODER_TOKEN = "[ENC]"
_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tiny_vocabulary() -> dict[str, int]:
    """Specials, then letters, digits and punctuation as word starts and as ``##`` continuations."""
    symbols = string.ascii_lowercase + string.digits + string.punctuation
    pieces = [*_SPECIALS, *symbols, *(f"##{s}" for s in string.ascii_lowercase + string.digits)]
    return {piece: index for index, piece in enumerate(pieces)}


#: Size of the tiny vocabulary once [DEC] and [ENC] are added (the tiny text encoder's vocab_size).
TINY_VOCAB_SIZE = len(tiny_vocabulary()) + 2


def _bert_tokenizer(source: str | os.PathLike) -> BertTokenizer:
    text = str(source)
    if text == TINY_VOCAB:
        return BertTokenizer(vocab=tiny_vocabulary())
    path = Path(text).expanduser()
    if path.is_file():
        return BertTokenizer(vocab=str(path))
    if path.is_dir() and (path / "vocab.txt").is_file():
        return BertTokenizer(vocab=str(path / "vocab.txt"))
    try:
        vocab_file = hf_hub_download(text, "vocab.txt")
    except Exception as error:  # offline, missing repo, network: all mean "not here"
        raise WeightsNotFoundError(
            f"could not get the BERT vocabulary {text!r} ({type(error).__name__}: {error}). ImageReward uses "
            f"{HUB_TOKENIZER!r} from the Hugging Face hub; without network pass tokenizer='/path/to/vocab.txt' "
            "(or a folder holding vocab.txt)."
        ) from error
    return BertTokenizer(vocab=vocab_file)


class ImageRewardTokenizer:
    """Prompts -> ``(input_ids, attention_mask)`` [N, 35] exactly as ImageReward tokenises them.

    ImageReward adds [DEC] as the bos token and [ENC] as an extra special token but keeps [CLS]
    as the first token of the text it scores (replacing it with [ENC] moves rewards by ~0.2).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int = MAX_LENGTH):
        tokenizer.add_special_tokens({"bos_token": DECODER_TOKEN})
        tokenizer.add_special_tokens({"additional_special_tokens": [ENCODER_TOKEN]})
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_source(cls, source: str | os.PathLike = HUB_TOKENIZER, max_length: int = MAX_LENGTH) -> "ImageRewardTokenizer":
        """From a hub id, a folder or ``vocab.txt`` path, or ``TINY_VOCAB``."""
        return cls(_bert_tokenizer(source), max_length=max_length)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def enc_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(ENCODER_TOKEN)

    def __call__(self, prompts: Sequence[str], device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(
            list(prompts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        if device is None:
            return batch["input_ids"], batch["attention_mask"]
        return to_device(batch["input_ids"], device), to_device(batch["attention_mask"], device)
