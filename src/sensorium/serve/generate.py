"""Routes that put photos into words: describe, ask and speak, and an indexed photo's description.

    POST /api/v1/describe              file=photo            -> the Description (sentence, findings, left out)
    POST /api/v1/ask                   file=photo, question  -> the Answer ("cannot tell" with the reason when
                                                                 the experts cannot support one)
    POST /api/v1/speak                 {"text", "voice", "rate"} -> audio/wav (espeak-ng)
    GET  /api/v1/items/{id}/description                        -> an indexed photo's Description

None of these is a learned captioner (see sensorium.generation.describe).
"""
from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..errors import SensoriumError
from ..modality import IMAGE
from .api import State, saved_upload, served_file, served_item
from .problems import Problem
from .work import until_client_leaves

MAX_SPEAK_CHARS = 2000

router = APIRouter(prefix="/api/v1")


def _describer(state):
    from ..generation.photos import describer

    return describer(state.experts)


@router.post("/describe")
async def describe_upload(request: Request, state: State, file: Annotated[UploadFile, File()]) -> dict:
    """One sentence about an uploaded photo, each finding with its confidence."""
    from ..generation.photos import read_photo

    def work() -> dict:
        with saved_upload(file, (IMAGE,), state.max_upload_bytes) as (path, _):
            return _describer(state).describe(read_photo(path)).as_dict()

    return await until_client_leaves(request, work)


@router.post("/ask")
async def ask_upload(request: Request, state: State, file: Annotated[UploadFile, File()],
                     question: Annotated[str, Form(min_length=1, max_length=512)]) -> dict:
    """Answer a question about an uploaded photo from the experts' findings, or "cannot tell" and why."""
    from ..generation.answer import check_question
    from ..generation.photos import read_photo

    try:
        question = check_question(question)
    except ValueError as error:
        raise Problem(422, "Invalid request", str(error)) from None

    def work() -> dict:
        with saved_upload(file, (IMAGE,), state.max_upload_bytes) as (path, _):
            return _describer(state).answer(read_photo(path), question).as_dict()

    return await until_client_leaves(request, work)


class SpeakRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_SPEAK_CHARS, description="What to say.")
    voice: str = Field("en-us", max_length=32, description="An espeak-ng voice: en-us, en-gb, fr, de ...")
    rate: int = Field(160, ge=80, le=450, description="Words per minute.")


@router.post("/speak", response_class=Response, responses={200: {"content": {"audio/wav": {}}}})
async def speak_text(request: Request, body: SpeakRequest) -> Response:
    """Text read aloud by espeak-ng, as a 16 kHz WAV file (not signed: `sensorium speak` signs files)."""
    from ..experts.tts import save_wav, synthesize

    if not body.text.strip():
        raise Problem(422, "Invalid request", "text: nothing to say")

    def work() -> bytes:
        try:
            speech = synthesize(body.text, voice=body.voice, rate_wpm=body.rate)
        except SensoriumError as error:
            raise Problem(422, "Invalid request", str(error)) from None
        buffer = io.BytesIO()
        save_wav(speech, buffer)
        return buffer.getvalue()

    audio = await until_client_leaves(request, work)
    return Response(audio, media_type="audio/wav", headers={"Content-Disposition": 'inline; filename="speech.wav"'})


@router.get("/items/{item_id}/description")
def item_description(state: State, item_id: int) -> dict:
    """The description of an indexed photo (computed now from the file, with the same experts)."""
    from ..generation.photos import read_photo

    item = served_item(state, item_id)
    if item.modality != IMAGE:
        raise Problem(422, "Unprocessable Content", f"item {item_id}: a {item.modality} item; only photos are "
                      "described")
    path = served_file(state, item)
    description = _describer(state).describe(read_photo(path)).as_dict()
    return {"id": item.id, **description}
