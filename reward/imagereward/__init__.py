"""ImageReward (Xu et al., NeurIPS 2023): the per-frame reward, BLIP scorer, tokenizer, converter and presets."""
