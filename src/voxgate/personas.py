"""Personas: a name, a system prompt, a voice, a language and sampling settings.

The built-in ones live here in code (every user has them); users' own are stored rows.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonaSpec:
    name: str
    system_prompt: str
    voice: str | None = None
    language: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    builtin: bool = False

    def as_fields(self) -> dict:
        """What a custom model takes from this persona (see `voxgate models create`)."""
        return {
            "system": self.system_prompt or None,
            "voice": self.voice,
            "language": self.language,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }


_SPOKEN = " Your words are spoken aloud: no lists, no markdown."

BUILTIN: dict[str, PersonaSpec] = {
    p.name: p
    for p in (
        # The assistant's prompt is the configurable default (VOXGATE_SYSTEM_PROMPT): empty here.
        PersonaSpec("assistant", "", builtin=True),
        PersonaSpec(
            "formal",
            "You are a courteous, formal assistant. Answer in complete, polished sentences, "
            "without contractions or slang." + _SPOKEN,
            builtin=True,
        ),
        PersonaSpec(
            "casual",
            "You are a relaxed, friendly buddy. Answer casually and warmly, like chatting "
            "with a friend, in one or two short sentences." + _SPOKEN,
            builtin=True,
        ),
        PersonaSpec(
            "humorous",
            "You are a witty assistant. Answer correctly in one or two short sentences and add a light joke." + _SPOKEN,
            temperature=0.7,
            builtin=True,
        ),
        PersonaSpec(
            "concise",
            "Answer with as few words as possible: one word or a short phrase, never a full sentence.",
            max_tokens=20,
            builtin=True,
        ),
    )
}
