"""Learning a shared space: alignment losses and projection heads trained on frozen experts.

    from sensorium.align import AlignConfig, train_space, Space
    result = train_space(image_features, text_features, "image", "text", AlignConfig(loss="infonce"))
    result.space.save("my-space")            # safetensors + JSON
    vectors = Space.load("my-space").embed("text", text_features)
"""
from .losses import InfoNCELoss, SigLIPLoss, SinkhornAlignmentLoss, TripletLoss, make_loss, sinkhorn
from .projection import ProjectionHead, Space
from .train import AlignConfig, AlignResult, train_space

__all__ = ["AlignConfig", "AlignResult", "InfoNCELoss", "ProjectionHead", "SigLIPLoss", "SinkhornAlignmentLoss",
           "Space", "TripletLoss", "make_loss", "sinkhorn", "train_space"]
