"""Write the example's training text, ``input.txt``, without touching the network.

Why a generator instead of a download: clusters (and this repo's tests) may have no
internet, and the example must be the first thing that works. The corpus is

1. a handful of public-domain poems (all published before 1930), typed in below, and
2. "fables" produced by a small grammar from a fixed seed, to reach ~100 KB.

The grammar text has a small vocabulary and a regular structure, so a tiny model
learns it visibly within a couple of hundred steps. The output is byte-for-byte
deterministic: ``python3 make_data.py`` rewrites the committed ``input.txt`` exactly,
and the e2e test checks that.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

TARGET_BYTES = 100_000
SEED = 1729

POEMS = [
    (
        "The Tyger",
        "William Blake, 1794",
        """\
Tyger Tyger, burning bright,
In the forests of the night;
What immortal hand or eye,
Could frame thy fearful symmetry?

In what distant deeps or skies.
Burnt the fire of thine eyes?
On what wings dare he aspire?
What the hand, dare seize the fire?

And what shoulder, & what art,
Could twist the sinews of thy heart?
And when thy heart began to beat,
What dread hand? & what dread feet?

What the hammer? what the chain,
In what furnace was thy brain?
What the anvil? what dread grasp,
Dare its deadly terrors clasp!

When the stars threw down their spears
And water'd heaven with their tears:
Did he smile his work to see?
Did he who made the Lamb make thee?

Tyger Tyger burning bright,
In the forests of the night:
What immortal hand or eye,
Dare frame thy fearful symmetry?
""",
    ),
    (
        "Sonnet 18",
        "William Shakespeare, 1609",
        """\
Shall I compare thee to a summer's day?
Thou art more lovely and more temperate:
Rough winds do shake the darling buds of May,
And summer's lease hath all too short a date;
Sometime too hot the eye of heaven shines,
And often is his gold complexion dimm'd;
And every fair from fair sometime declines,
By chance or nature's changing course untrimm'd;
But thy eternal summer shall not fade,
Nor lose possession of that fair thou ow'st;
Nor shall death brag thou wander'st in his shade,
When in eternal lines to time thou grow'st:
So long as men can breathe or eyes can see,
So long lives this, and this gives life to thee.
""",
    ),
    (
        "Sonnet 116",
        "William Shakespeare, 1609",
        """\
Let me not to the marriage of true minds
Admit impediments. Love is not love
Which alters when it alteration finds,
Or bends with the remover to remove.
O no! it is an ever-fixed mark
That looks on tempests and is never shaken;
It is the star to every wand'ring bark,
Whose worth's unknown, although his height be taken.
Love's not Time's fool, though rosy lips and cheeks
Within his bending sickle's compass come;
Love alters not with his brief hours and weeks,
But bears it out even to the edge of doom.
If this be error and upon me prov'd,
I never writ, nor no man ever lov'd.
""",
    ),
    (
        "Ozymandias",
        "Percy Bysshe Shelley, 1818",
        """\
I met a traveller from an antique land,
Who said---"Two vast and trunkless legs of stone
Stand in the desert. . . . Near them, on the sand,
Half sunk a shattered visage lies, whose frown,
And wrinkled lip, and sneer of cold command,
Tell that its sculptor well those passions read
Which yet survive, stamped on these lifeless things,
The hand that mocked them, and the heart that fed;
And on the pedestal, these words appear:
My name is Ozymandias, King of Kings;
Look on my Works, ye Mighty, and despair!
Nothing beside remains. Round the decay
Of that colossal Wreck, boundless and bare
The lone and level sands stretch far away."
""",
    ),
    (
        "I Wandered Lonely as a Cloud",
        "William Wordsworth, 1807",
        """\
I wandered lonely as a cloud
That floats on high o'er vales and hills,
When all at once I saw a crowd,
A host, of golden daffodils;
Beside the lake, beneath the trees,
Fluttering and dancing in the breeze.

Continuous as the stars that shine
And twinkle on the milky way,
They stretched in never-ending line
Along the margin of a bay:
Ten thousand saw I at a glance,
Tossing their heads in sprightly dance.

The waves beside them danced; but they
Out-did the sparkling waves in glee:
A poet could not but be gay,
In such a jocund company:
I gazed---and gazed---but little thought
What wealth the show to me had brought:

For oft, when on my couch I lie
In vacant or in pensive mood,
They flash upon that inward eye
Which is the bliss of solitude;
And then my heart with pleasure fills,
And dances with the daffodils.
""",
    ),
    (
        "Hope is the thing with feathers",
        "Emily Dickinson, 1891",
        """\
"Hope" is the thing with feathers -
That perches in the soul -
And sings the tune without the words -
And never stops - at all -

And sweetest - in the Gale - is heard -
And sore must be the storm -
That could abash the little Bird
That kept so many warm -

I've heard it in the chillest land -
And on the strangest Sea -
Yet - never - in Extremity,
It asked a crumb - of me.
""",
    ),
    (
        "The Road Not Taken",
        "Robert Frost, 1916",
        """\
Two roads diverged in a yellow wood,
And sorry I could not travel both
And be one traveler, long I stood
And looked down one as far as I could
To where it bent in the undergrowth;

Then took the other, as just as fair,
And having perhaps the better claim,
Because it was grassy and wanted wear;
Though as for that the passing there
Had worn them really about the same,

And both that morning equally lay
In leaves no step had trodden black.
Oh, I kept the first for another day!
Yet knowing how way leads on to way,
I doubted if I should ever come back.

I shall be telling this with a sigh
Somewhere ages and ages hence:
Two roads diverged in a wood, and I---
I took the one less traveled by,
And that has made all the difference.
""",
    ),
]

# A tiny grammar for fables. Words are plain English; the structure repeats enough
# that a 2-layer model picks up spelling, spacing and punctuation quickly.
# fmt: off
ANIMALS = ["fox", "crow", "hare", "tortoise", "lion", "mouse", "wolf", "lamb", "ant",
           "grasshopper", "owl", "goat", "stag", "frog", "heron", "cat", "dog", "bee"]
ADJECTIVES = ["clever", "proud", "hungry", "patient", "foolish", "little", "old", "swift",
              "greedy", "kind", "idle", "wise", "timid", "bold", "weary", "honest"]
PLACES = ["by the river", "in the deep wood", "on the hill", "near the old mill",
          "at the edge of the field", "under the oak tree", "beside the well",
          "in the meadow", "on the road to town", "among the reeds"]
SEASONS = ["in the spring", "one summer morning", "late in the autumn",
           "in the hard winter", "at the end of the harvest", "on a cold night"]
WANTS = ["a piece of cheese", "a bunch of grapes", "a warm place to sleep",
         "the last of the corn", "a drink of water", "the fattest fig",
         "a way across the stream", "the honey in the hollow tree", "a crown of leaves"]
ACTIONS = ["laughed at", "tricked", "helped", "ignored", "challenged", "praised",
           "warned", "followed", "chased", "waited for"]
ENDINGS = ["went home with nothing", "learned a hard lesson", "shared the prize",
           "was never seen again", "thanked the other", "slept until noon",
           "lost the race", "kept the secret", "became a friend for life"]
# fmt: on
MORALS = [
    "Slow and steady wins the race.",
    "Pride goes before a fall.",
    "A kindness is never wasted.",
    "Look before you leap.",
    "It is easy to despise what you cannot get.",
    "Do not count your chickens before they are hatched.",
    "Little friends may prove great friends.",
    "Work today and you will eat tomorrow.",
    "Flattery is not to be trusted.",
    "United we stand, divided we fall.",
    "Honesty is the best policy.",
    "The wise plan ahead.",
]


def _a(word: str) -> str:
    vowel_sound = word[0] in "aeiou" or word.startswith("hon")  # "an honest ..."
    return ("an " if vowel_sound else "a ") + word


def fable(rng: random.Random, number: int) -> str:
    """One short fable: a title, four to six sentences from the grammar, a moral."""
    hero, other = rng.sample(ANIMALS, 2)
    adj1, adj2 = rng.sample(ADJECTIVES, 2)
    title = (
        f"Fable {number}. The {adj1.capitalize()} {hero.capitalize()} and the {other.capitalize()}"
    )
    sentences = [
        f"{rng.choice(SEASONS).capitalize()}, {_a(adj1)} {hero} lived {rng.choice(PLACES)}.",
        f"The {hero} wanted {rng.choice(WANTS)}, but {_a(adj2)} {other} wanted it too.",
        (
            f"The {hero} {rng.choice(ACTIONS)} the {other}, and the {other} "
            f"{rng.choice(ACTIONS)} the {hero}."
        ),
    ]
    for _ in range(rng.randint(1, 3)):
        who, whom = rng.sample([hero, other], 2)
        sentences.append(
            rng.choice(
                [
                    f'"Why do you hurry so?" said the {who} to the {whom}.',
                    (
                        f'"I am {rng.choice(ADJECTIVES)}, and you are {rng.choice(ADJECTIVES)}," '
                        f"said the {who}."
                    ),
                    f"So the {who} went {rng.choice(PLACES)} to look for {rng.choice(WANTS)}.",
                    f"The {who} {rng.choice(ACTIONS)} the {whom} {rng.choice(SEASONS)}.",
                ]
            )
        )
    sentences.append(f"In the end the {rng.choice([hero, other])} {rng.choice(ENDINGS)}.")
    return f"{title}\n\n{' '.join(sentences)}\nMoral: {rng.choice(MORALS)}\n"


def build(target_bytes: int = TARGET_BYTES, seed: int = SEED) -> str:
    """Return the whole corpus as one string (ASCII only, so bytes == characters)."""
    parts = [f"{title}\n({who})\n\n{body}" for title, who, body in POEMS]
    rng = random.Random(seed)
    size = sum(len(p) + 1 for p in parts)
    number = 1
    while size < target_bytes:
        part = fable(rng, number)
        parts.append(part)
        size += len(part) + 1
        number += 1
    text = "\n".join(parts)
    assert text.isascii()
    return text


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("input.txt")
    text = build()
    out.write_text(text, encoding="ascii")
    print(f"wrote {out} ({len(text)} bytes, {len(set(text))} distinct characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
