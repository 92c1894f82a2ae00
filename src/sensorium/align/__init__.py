"""Learning a shared space: alignment losses and projection heads trained on frozen experts.

    from sensorium.align import AlignConfig, train_space, Space
    result = train_space(image_features, text_features, "image", "text", AlignConfig(loss="infonce"))
    result.space.save("my-space")            # safetensors + JSON
    vectors = Space.load("my-space").embed("text", text_features)

Several modalities bound through a hub (only audio<->image and image<->text pairs, see bind.py):
    train_bound_space({("audio", "image"): (a, i), ("image", "text"): (i2, t)}, config, frozen=("text",))
"""
from .audio_features import audio_extractor
from .bind import Edge, train_bound_space
from .losses import InfoNCELoss, SigLIPLoss, SinkhornAlignmentLoss, TripletLoss, make_loss, sinkhorn
from .heads import ProjectionHead, Space
from .train import AlignConfig, AlignResult, train_space

__all__ = ["AlignConfig", "AlignResult", "Edge", "InfoNCELoss", "ProjectionHead", "SigLIPLoss", "SinkhornAlignmentLoss",
           "Space", "TripletLoss", "audio_extractor", "make_loss", "sinkhorn", "train_bound_space", "train_space"]
