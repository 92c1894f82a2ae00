"""A procedural visual world with exact ground truth (CLEVR-like scenes, captions, questions).

`generate_scene(seed, index)` draws one scene and its picture; `make_world(out, n, WorldSpec(...))`
writes a dataset (`sensorium world make`). Everything said about a scene is true by construction,
which is what lets captioning, question answering and hallucination be measured exactly.
"""
from .chair import ChairScores, chair, mentions
from .language import Caption, Family, Question, Relation, captions, questions
from .scene import Scene, SceneOptions, WorldObject, generate_scene, render_scene
from .vocabulary import ANSWERS, CANNOT_TELL, Attribute, Condition
from .writer import WorldError, WorldSpec, make_world, read_scenes

__all__ = ["ANSWERS", "CANNOT_TELL", "Attribute", "Caption", "ChairScores", "chair", "mentions", "Condition", "Family", "Question", "Relation", "Scene",
           "SceneOptions", "WorldError", "WorldObject", "WorldSpec", "captions", "generate_scene", "make_world",
           "questions", "read_scenes", "render_scene"]
