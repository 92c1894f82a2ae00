"""Words that name each of the 80 COCO categories, for CHAIR (Rohrbach et al. 2018).

Written by hand from general English (CHAIR's own list is in the same spirit: a category, its
plurals and the everyday words for it); not derived from `describe`'s vocabulary or from the
COCO-mini captions. `category_of(noun)` maps a noun phrase to a category: the whole phrase
first, then its last word ("sports car" -> car), so a general word cannot slip past the check.
"""
from __future__ import annotations

SYNONYMS = {
    "person": "person people man men woman women boy girl child children kid kids baby player skier surfer "
              "skateboarder rider guy lady adult teenager human pedestrian groom bride diver ballplayer",
    "bicycle": "bicycle bike bikes cycle tricycle unicycle",
    "car": "car cars automobile taxi cab sedan jeep minivan convertible limousine wagon racer",
    "motorcycle": "motorcycle motorbike scooter moped motor scooter",
    "airplane": "airplane plane jet aircraft airliner warplane",
    "bus": "bus buses trolleybus minibus",
    "train": "train locomotive tram streetcar railway",
    "truck": "truck pickup lorry trailer truck fire engine tow truck garbage truck",
    "boat": "boat ship canoe kayak yacht sailboat ferry liner gondola speedboat schooner catamaran",
    "traffic light": "traffic light stoplight traffic signal",
    "fire hydrant": "fire hydrant hydrant",
    "stop sign": "stop sign",
    "parking meter": "parking meter",
    "bench": "bench",
    "bird": "bird birds pigeon duck goose swan gull seagull parrot owl eagle hen chicken ostrich penguin",
    "cat": "cat cats kitten kitty",
    "dog": "dog dogs puppy pup",
    "horse": "horse horses pony",
    "sheep": "sheep lamb ram",
    "cow": "cow cows cattle bull ox calf",
    "elephant": "elephant",
    "bear": "bear bears",
    "zebra": "zebra",
    "giraffe": "giraffe",
    "backpack": "backpack rucksack",
    "umbrella": "umbrella parasol",
    "handbag": "handbag purse",
    "tie": "tie necktie bow tie",
    "suitcase": "suitcase luggage",
    "frisbee": "frisbee",
    "skis": "skis ski",
    "snowboard": "snowboard",
    "sports ball": "sports ball ball soccer ball tennis ball baseball basketball football volleyball",
    "kite": "kite",
    "baseball bat": "baseball bat bat",
    "baseball glove": "baseball glove glove mitt",
    "skateboard": "skateboard",
    "surfboard": "surfboard",
    "tennis racket": "tennis racket racket racquet",
    "bottle": "bottle",
    "wine glass": "wine glass glass goblet beer glass",
    "cup": "cup mug",
    "fork": "fork",
    "knife": "knife",
    "spoon": "spoon",
    "bowl": "bowl",
    "banana": "banana",
    "apple": "apple",
    "sandwich": "sandwich burger hamburger cheeseburger",
    "orange": "orange",
    "broccoli": "broccoli",
    "carrot": "carrot",
    "hot dog": "hot dog hotdog",
    "pizza": "pizza",
    "donut": "donut doughnut",
    "cake": "cake cupcake",
    "chair": "chair seat stool",
    "couch": "couch sofa",
    "potted plant": "potted plant plant pot plant houseplant",
    "bed": "bed",
    "dining table": "dining table table desk",
    "toilet": "toilet",
    "tv": "tv television monitor screen",
    "laptop": "laptop notebook computer",
    "mouse": "mouse computer mouse",
    "remote": "remote remote control",
    "keyboard": "keyboard",
    "cell phone": "cell phone phone cellphone mobile phone smartphone telephone",
    "microwave": "microwave",
    "oven": "oven stove",
    "toaster": "toaster",
    "sink": "sink",
    "refrigerator": "refrigerator fridge",
    "book": "book books",
    "clock": "clock",
    "vase": "vase",
    "scissors": "scissors",
    "teddy bear": "teddy bear teddy",
    "hair drier": "hair drier hair dryer",
    "toothbrush": "toothbrush",
}
PHRASES = ("bow tie", "fire engine", "tow truck", "garbage truck", "traffic light", "traffic signal",
           "fire hydrant", "stop sign", "parking meter", "sports ball", "soccer ball", "tennis ball",
           "baseball bat", "baseball glove", "tennis racket", "wine glass", "beer glass", "hot dog",
           "potted plant", "pot plant", "dining table", "computer mouse", "remote control", "cell phone",
           "mobile phone", "teddy bear", "hair drier", "hair dryer", "motor scooter", "trailer truck")


def _word_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for category, words in SYNONYMS.items():
        text = words
        for phrase in PHRASES:
            if phrase in text:
                table[phrase] = category
                text = text.replace(phrase, " ")
        for word in text.split():
            table.setdefault(word, category)
    return table


WORDS = _word_table()


def category_of(noun: str) -> str | None:
    noun = " ".join(noun.lower().split())
    if noun in WORDS:
        return WORDS[noun]
    last = noun.split(" ")[-1] if noun else ""
    return WORDS.get(last) or WORDS.get(last[:-1] if last.endswith("s") else last)


def caption_categories(caption: str) -> set[str]:
    """COCO categories a human caption mentions (CHAIR adds these to the instance annotations)."""
    text = " " + " ".join("".join(ch if ch.isalnum() else " " for ch in caption.lower()).split()) + " "
    found = set()
    for phrase in PHRASES:
        if f" {phrase} " in text:
            found.add(WORDS[phrase])
            text = text.replace(f" {phrase} ", " ")
    for word in text.split():
        category = WORDS.get(word) or (WORDS.get(word[:-1]) if word.endswith("s") else None)
        if category:
            found.add(category)
    return found
