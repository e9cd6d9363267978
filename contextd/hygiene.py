"""Make indexed text inert before it reaches an agent or a terminal.

Applied where text leaves contextd (MCP tools, CLI output), never to the index, so what
is stored stays faithful to the file. `clean`:

- strips ANSI/terminal escape sequences, C0/C1 control characters (tab and newline stay),
  bidirectional overrides and isolates (the "Trojan Source" characters), zero-width
  characters and Unicode tag characters that hide text;
- escapes markup that imitates a prompt or a tool protocol, so it reads as quoted text:
  tags such as `<IMPORTANT>`, `<system>`, `<function_calls>`, `<invoke>`, `<tool_call>`
  (any all-capitals tag, and tags named for roles, tools and instructions) become
  `&lt;IMPORTANT&gt;`; chat-template tokens (`<|im_start|>`, `<<SYS>>`, `[INST]`) likewise.

Ordinary code keeps its angle brackets (`a < b`, `List<T>`, `Promise<User>`, `<div>`).
Tool-call JSON in a file stays as written: it reaches an agent inside a JSON string
(quotes escaped), next to a note that result text is data, and in the CLI behind a
line-number gutter.
"""

from __future__ import annotations

import re

ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
INVISIBLE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u180e\u00ad\u061c"
    "\U000e0000-\U000e007f]"  # also Unicode "tag" characters, used to smuggle hidden text
)

# Tag names that address a model: roles, tool protocols, instructions (any case).
PROMPT_WORDS = (
    r"system|user|assistant|human|ai|developer|tools?|tool_?calls?|tool_?use|tool_?results?|"
    r"tool_?response|functions?|function_?calls?|function_?results?|invoke|parameter|"
    r"instructions?|important|prompt|system_?prompt|context|thinking|answer|admin|"
    r"start_of_turn|end_of_turn|[a-z]+:(?:invoke|parameter|function_?calls?)"
)
# The name comes right after `<` (`a < user_limit` is a comparison). A word may go on after
# a '-' or '_' (`<system-reminder>`, `<user_query>`), not in camel case (`<Tooltip>`,
# `<UserCard>` are components). The tag closes on its own line, or, broken across lines,
# holds only attributes (code like `i < MAX ;` ... `p->next` never reads as one).
PROMPT_TAG = re.compile(
    rf"</?(?:(?i:(?:{PROMPT_WORDS})(?:[-_][a-z0-9]+)*)|[A-Z][A-Z0-9_-]{{2,}})(?=[\s/>!])"
    r"""(?:[^<>\n]{0,300}|(?:\s+[\w:.-]+(?:=(?:"[^"<>]*"|'[^'<>]*'))?){0,20}\s*/?)>"""
)
LINE_END_CR = re.compile(r"\r+(?=\n|\Z)")
BARE = re.compile(r"<\w+>\Z")  # no attributes, no closing slash
TYPE_ACRONYM = 4  # capitals a type argument may have (`URL`, `UUID`, `JSON`)
# Tag names that command, never a type argument even right after a name.
COMMANDING = frozenset(
    [
        "important",
        "instruction",
        "instructions",
        "system",
        "system_prompt",
        "prompt",
        "admin",
        "thinking",
        "start_of_turn",
        "end_of_turn",
    ]
)
CHAT_TOKEN = re.compile(r"<\|[^<>|\n]{1,40}\|>|<</?SYS>>|\[/?INST\]")


def clean(text: str) -> str:
    return neutralise(plain(text))


def plain(text: str) -> str:
    """Text without terminal escapes, control or invisible characters (what a reader
    sees of it), its markup left as it is."""
    text = ANSI.sub("", text)
    # Carriage returns end no line (the index counts '\n' only, as git and sed do): those
    # ending a line go, any other becomes a space, so line numbers stay true.
    text = LINE_END_CR.sub("", text).replace("\r", " ")
    text = CONTROL.sub("", text)
    return INVISIBLE.sub("", text)


def one_line(text: str) -> str:
    """A name (a path, a symbol) cleaned and kept on its line: a file named `new\nline.md`
    printed as two lines broke the `path:start-end` a script reads."""
    return clean(text).replace("\n", "\\n").replace("\t", "\\t")


def neutralise(text: str) -> str:
    """Escape markup that imitates prompts or tool calls (see the module docstring)."""
    if "<" not in text and "[" not in text:
        return text
    text = CHAT_TOKEN.sub(_escape, text)
    return PROMPT_TAG.sub(_escape_tag, text)


def _escape_tag(match: re.Match[str]) -> str:
    """A bare opening tag right after a name is a type argument (`Promise<User>`,
    `List<UUID>`, `createContext<Context>(`), and stays, unless it is a word that
    commands (`notes<IMPORTANT>`, `x<INSTRUCTIONS>`) or long capitals; a closing tag
    never stays."""
    tag, at = match.group(0), match.start()
    name = tag[1:-1]
    typed = at and (match.string[at - 1].isalnum() or match.string[at - 1] in "_$")
    shouting = name.isupper() and len(name) > TYPE_ACRONYM
    if typed and BARE.match(tag) and not shouting and name.lower() not in COMMANDING:
        return tag
    return _escape(match)


def _escape(match: re.Match[str]) -> str:
    return (
        match.group(0)
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("[", "&#91;")
        .replace("]", "&#93;")
    )
