"""A play's text as speeches: the spoken lines only, each with its line number in the file.

The corpus texts are Project Gutenberg plays (already without Gutenberg's licence boilerplate):
a title page and the list of persons, then acts and scenes, where each speech is a paragraph
whose first line names the speaker ("MACBETH.", "Ber.", "First Citizen.") and stage directions
stand in brackets, on their own lines or inside a line, sometimes over several lines. For the
built-in tasks only what is spoken matters, so this module drops the front matter, the act and
scene headings, the stage directions and the speaker names (which would give away the play), and
keeps each speech as a list of (line_number, text).

A paragraph that does not start with a speaker name (about 4% of them: a speech going on after
a stage direction, a scene's location line) is left out rather than guessed at.
"""
import re

BODY_START = re.compile(r"^(ACT|Act|INDUCTION|PROLOGUE)\b")
HEADING = re.compile(r"^(ACT|SCENE|Act|Scene)\s+([IVXLC]+|\d+|FIRST|SECOND|THIRD|FOURTH|FIFTH)\b"
                     r"|^(INDUCTION|PROLOGUE|EPILOGUE)\b")
# "MACBETH.", "Ber.", "EGEUS", "1 Citizen.", "Duke of York.": short, capitalised, no sentence punctuation
SPEAKER = re.compile(r"^(\d+ )?[A-Z][A-Za-z'&-]*(?:[ .]+[A-Za-z'&-]+)*\.?$")
SPEAKER_MAX_CHARS = 30
# a speaker name run into the speech's first line, as some texts do: "OFFICER. Good sir, be patient."
INLINE_SPEAKER = re.compile(r"^(\d+ )?[A-Z][A-Z'&-]+(?: [A-Z][A-Z'&-]+)*\.\s+(?=\S)")
SPACES = re.compile(r"\s+")


def play_speeches(text):
    """[[(line_number, line), ...], ...]: each speech's spoken lines, directions and speaker removed."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if BODY_START.match(line)), None)
    if start is None:
        raise ValueError("no 'ACT' or 'PROLOGUE' line found: this does not look like a play")
    speeches = []
    for block in paragraphs(numbered_without_directions(lines, start)):
        first = block[0][1]
        if len(block) >= 2 and is_speaker(first):
            spoken = block[1:]
        elif INLINE_SPEAKER.match(first):
            spoken = block
        else:
            continue
        speeches.extend(split_speeches(spoken))
    return speeches


def split_speeches(spoken):
    """The speeches of one paragraph: usually one, but a few texts start the next speaker's speech
    without a blank line ("GLEND." on a line of its own, or "NORFOLK. I thank your Grace,")."""
    speeches, speech = [], []
    for number, line in spoken:
        if is_speaker(line) and line == line.upper():
            speeches.append(speech)
            speech = []
            continue
        if INLINE_SPEAKER.match(line):
            speeches.append(speech)
            speech = []
            line = INLINE_SPEAKER.sub("", line)
        line = SPACES.sub(" ", line).strip()
        if any(c.isalpha() for c in line):
            speech.append((number, line))
    speeches.append(speech)
    return [speech for speech in speeches if speech]


def is_speaker(line):
    return len(line) <= SPEAKER_MAX_CHARS and SPEAKER.match(line) is not None


def numbered_without_directions(lines, start):
    """(line_number, line, was_only_a_direction) from `start` on, with [bracketed] text removed."""
    depth = 0  # > 0 inside a stage direction that spans lines
    for i in range(start, len(lines)):
        line = lines[i].rstrip()
        if not line.strip():
            depth = 0  # a direction never spans a blank line: an unclosed "[" must not eat the play
            yield i + 1, "", False
            continue
        if depth == 0 and "[" not in line:
            yield i + 1, line.strip(), False
            continue
        kept = []
        for ch in line:
            if ch == "[":
                depth += 1
            elif ch == "]" and depth:
                depth -= 1
            elif depth == 0 and ch != "]":
                kept.append(ch)
        text = "".join(kept).strip()
        yield i + 1, text, not text


def paragraphs(numbered):
    """Blocks of non-empty lines, split at blank lines and headings; a line that held only a stage
    direction is dropped without ending its block (the speech goes on after "[Exit Servant.]")."""
    block = []
    for number, line, only_direction in numbered:
        if only_direction:
            continue
        if not line or HEADING.match(line):
            if block:
                yield block
            block = []
            continue
        block.append((number, line))
    if block:
        yield block

