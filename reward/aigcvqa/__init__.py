"""AIGC-VQA: technical (3D Swin), aesthetic (ConvNeXt-3D) and alignment (BLIP + ST-Adapter) branches."""
