"""What is wrong with a config file, one line per problem, by its path in the file and in a user's words.

Built from the structured fields of each pydantic error (`loc`, `type`, `ctx`), never from pydantic's
message text, so a pydantic upgrade can't garble them. A step of `loc` that is not a key or an index of
the user's own document (pydantic names union members and validators there) is left out of the path.
"""

from __future__ import annotations

from pydantic import ValidationError

_SENTINEL = object()

# error type -> what was expected, said for someone editing YAML; `{…}` fields come from the error's ctx
EXPECTED = {
    "missing": "required",
    "extra_forbidden": "unknown key (check its spelling and indentation)",
    "string_type": "expected text",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "path_type": "expected a file path (text)",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list, like [a, b]",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "literal_error": "expected one of {expected}",
    "enum": "expected one of {expected}",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be {ge} or more",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be {le} or less",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "url_parsing": "expected a URL like http://127.0.0.1:8080",
}


class ConfigError(Exception):
    """A config that can't be used; `problems` lists each as 'path: what is wrong'."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"{self.source}: {count} problem{'s' if count != 1 else ''}:"]
        return "\n".join(lines + [f"  {problem}" for problem in self.problems])


def problems_of(err: ValidationError, raw) -> list[str]:
    """One line per problem (the first where a union reports one per member), with the bot's name."""
    seen, problems = set(), []
    for error in err.errors():
        steps = document_path(raw, error["loc"], error["type"])
        if steps in seen:
            continue
        seen.add(steps)
        where = format_path(steps)
        bot = bot_name(raw, steps)
        problems.append(f"{where} ({bot}): {message(error)}" if bot else f"{where}: {message(error)}")
    return problems


def document_path(raw, loc: tuple, kind: str) -> tuple:
    """The steps of `loc` that are keys or indexes of the document itself."""
    steps, node = [], raw
    for position, part in enumerate(loc):
        child = _child(node, part)
        if child is not _SENTINEL:
            steps.append(part)
            node = child
        elif kind == "missing" and position == len(loc) - 1:
            steps.append(part)             # the key that should be there
    return tuple(steps)


def _child(node, part):
    if isinstance(node, dict) and not isinstance(part, int) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _SENTINEL


def format_path(steps: tuple) -> str:
    text = ""
    for part in steps:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def message(error: dict) -> str:
    """What is wrong, for a person: our own validators' words, else what the type expects."""
    ctx = error.get("ctx") or {}
    if error["type"] in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    template = EXPECTED.get(error["type"])
    if template is None:
        return error["msg"]
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return error["msg"]


def bot_name(raw, steps: tuple) -> str | None:
    """The `name` of the bot a path is inside, when it has one."""
    if len(steps) >= 2 and steps[0] == "bots" and isinstance(steps[1], int):
        bot = raw["bots"][steps[1]]
        name = bot.get("name") if isinstance(bot, dict) else None
        return name if isinstance(name, str) else None
    return None


def duplicate_names(raw) -> list[str]:
    bots = raw.get("bots") if isinstance(raw, dict) else None
    if not isinstance(bots, list):
        return []
    first, problems = {}, []
    for index, bot in enumerate(bots):
        name = bot.get("name") if isinstance(bot, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(f"bots[{index}].name: duplicate name {name!r} (also bots[{first[name]}])")
        else:
            first[name] = index
    return problems
