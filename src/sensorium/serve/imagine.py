"""The route that draws pictures from words.

    POST /api/v1/imagine   {"prompt", "model", "n", "steps", "guidance", "seed", "scale"} -> image/png

One PNG: a grid of the N pictures, carrying its prompt, seed, model and pixel checksum as text
chunks (as `sensorium imagine` writes). The model's id, the prompt's nearest known concepts and a
warning when the prompt is far from all of them come back as headers too. Only models shipped with
Sensorium are named here: a client never makes the service open a folder of its choosing.
"""
from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..errors import SensoriumError
from .problems import Problem
from .work import until_client_leaves

MAX_SERVED_IMAGES, MAX_SERVED_STEPS = 16, 100

router = APIRouter(prefix="/api/v1")


class ImagineRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=300, description="What to draw, in words.")
    model: str = Field("mnist", max_length=64, description="A model shipped with Sensorium: mnist or fashion.")
    n: int = Field(8, ge=1, le=MAX_SERVED_IMAGES, description="How many pictures (one grid).")
    steps: int = Field(20, ge=1, le=MAX_SERVED_STEPS, description="DDIM sampling steps.")
    guidance: float = Field(3.0, ge=0, le=20, description="Classifier-free guidance weight (0: the prompt alone).")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    scale: int = Field(1, ge=1, le=8, description="Each pixel drawn as SCALE x SCALE.")


@router.post("/imagine", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def imagine_picture(request: Request, body: ImagineRequest) -> Response:
    """Pictures of a prompt from a text-to-image model, as one PNG grid."""
    from ..generation.imagine import SHIPPED, check_prompt, load_imaginer, png_bytes

    if body.model not in SHIPPED:
        raise Problem(422, "Invalid request", f"model: {body.model!r} is not one of the shipped models "
                      f"({', '.join(SHIPPED)})")
    try:
        prompt = check_prompt(body.prompt)
    except ValueError as error:
        raise Problem(422, "Invalid request", str(error)) from None

    def work():
        try:
            drawn = load_imaginer(body.model).imagine(prompt, n=body.n, steps=body.steps, guidance=body.guidance,
                                                      seed=body.seed)
        except SensoriumError as error:
            raise Problem(503, "Model unavailable", str(error)) from None
        pixels = drawn.grid()
        return drawn, png_bytes(pixels, drawn.metadata(pixels), body.scale)

    drawn, png = await until_client_leaves(request, work)
    headers = {"X-Imagine-Model": drawn.model,
               "X-Imagine-Nearest": json.dumps([[n.concept, n.similarity] for n in drawn.nearest]),
               "Content-Disposition": 'inline; filename="imagine.png"'}
    if drawn.warning:
        headers["X-Imagine-Warning"] = json.dumps(drawn.warning)[1:-1]  # ASCII-safe, as headers must be
    return Response(png, media_type="image/png", headers=headers)
