"""DOVER (Wu et al., ICCV 2023): the reward, its quality head, its checkpoint converter and presets."""
