"""Building blocks shared by several rewards: 3-D Swin (GRPB), ConvNeXt-3D, BLIP encoders and the ST-Adapter."""
