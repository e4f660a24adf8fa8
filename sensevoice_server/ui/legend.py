"""What SenseVoice's emoji mean: a legend built from funasr's own rendering of each tag."""

from __future__ import annotations

from sensevoice_server.rich_text import rich_transcription_postprocess as rich

EMOTIONS = {"HAPPY": "happy", "SAD": "sad", "ANGRY": "angry", "FEARFUL": "fearful",
            "DISGUSTED": "disgusted", "SURPRISED": "surprised"}  # fmt: skip
EVENTS = {"BGM": "music in the background", "Applause": "applause", "Laughter": "laughter",
          "Cry": "crying", "Sneeze": "a sneeze", "Cough": "a cough"}  # fmt: skip


def legend_markdown() -> str:
    """A Markdown table of the emoji funasr's rich_transcription_postprocess writes."""
    rows = ["| emoji | means | where |", "|---|---|---|"]
    for tag, meaning in EMOTIONS.items():
        emoji = rich(f"<|en|><|{tag}|><|Speech|><|withitn|>x").replace("x", "")
        rows.append(f"| {emoji} | the speaker sounds {meaning} | after the words |")
    for tag, meaning in EVENTS.items():
        emoji = rich(f"<|en|><|NEUTRAL|><|{tag}|><|withitn|>x").replace("x", "")
        rows.append(f"| {emoji} | {meaning} | before the words |")
    rows.append(f"| {rich('<|nospeech|><|Event_UNK|>')} | no speech, an unknown sound | alone |")
    note = ("\n\nA neutral voice and plain speech get no emoji. The segment table shows the "
            "same as words: language, emotion and events per segment.")  # fmt: skip
    return "\n".join(rows) + note
