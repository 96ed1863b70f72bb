"""`sidebyside run`'s settings from a file, so a team keeps one benchmark definition in its repository.

The file is `sidebyside.toml` in the current folder (its top level, or its
`[tool.sidebyside]` table), else the `[tool.sidebyside]` table of
`./pyproject.toml`. Its keys are the long options of `sidebyside run`
without the dashes (`threads = 2`, `impl = ["numpy_manual", "torch_nn"]`,
`size = ["64,1000,100,10"]`, `no_sweep = true`, `learning_rate = 1e-6`).
They are read by the same parser as the command line, so a bad value reads
as the flag's own error, prefixed by the file. A flag given on the command
line wins over the file's key.
"""

import argparse
import tomllib
from pathlib import Path

NOT_SETTINGS = ("resume", "out")  # where one run's output goes is not a benchmark definition


class SettingsError(Exception):
    """The settings file cannot be used: one line naming the file."""


def find(directory=None):
    """(path, table) of the settings in `directory` (default: the current folder), or (None, {})."""
    directory = Path.cwd() if directory is None else Path(directory)
    for name in ("sidebyside.toml", "pyproject.toml"):
        path = directory / name
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise SettingsError(f"{path}: not readable TOML: {error}") from None
        table = data.get("tool", {}).get("sidebyside")
        if table is None and name == "sidebyside.toml":
            table = {key: value for key, value in data.items() if key != "tool"}
        if table is None:
            continue
        if not isinstance(table, dict):
            raise SettingsError(f"{path}: [tool.sidebyside] must be a table")
        return path, table
    return None, {}


def arguments(table, options, path):
    """The table as command-line words for `sidebyside run`; `options` maps a key to its flag's action."""
    words = []
    for key, value in table.items():
        action = options.get(key)
        if action is None or key in NOT_SETTINGS:
            known = ", ".join(sorted(name for name in options if name not in NOT_SETTINGS))
            raise SettingsError(f"{path}: unknown setting {key!r}; known: {known}")
        flag = action.option_strings[-1]
        if action.nargs == 0:  # a switch
            if not isinstance(value, bool):
                raise SettingsError(f"{path}: {key} must be true or false, got {value!r}")
            words += [flag] if value else []
            continue
        values = value if isinstance(value, list) else [value]
        if len(values) > 1 and not isinstance(action, argparse._AppendAction):
            raise SettingsError(f"{path}: {key} takes one value, got {len(values)}")
        for item in values:
            if isinstance(item, list):  # size = [[64, 1000, 100, 10]]
                item = ",".join(str(part) for part in item)
            if isinstance(item, (dict, bool)):
                raise SettingsError(f"{path}: {key} cannot be {item!r}")
            words += [flag, str(item)]
    return words


def given(argv, actions):
    """The destinations of the options present in `argv` (long options, `--opt=value` and unique prefixes)."""
    present = set()
    for word in argv:
        if not word.startswith("-"):
            continue
        name = word.split("=", 1)[0]
        matches = [action for action in actions if name in action.option_strings]
        if not matches and name.startswith("--"):
            matches = [action for action in actions if any(option.startswith(name) for option in action.option_strings)]
        if len(matches) == 1:
            present.add(matches[0].dest)
    return present


def apply(args, argv, run_parser, directory=None):
    """`args` with every setting the command line did not give taken from the file; (args, path or None)."""
    path, table = find(directory)
    if path is None:
        return args, None
    actions = [action for action in run_parser._actions if action.option_strings and action.dest != "help"]
    options = {action.option_strings[-1].lstrip("-").replace("-", "_"): action for action in actions}
    words = arguments(table, options, path)
    try:
        from_file = run_parser.parse_args(words)
    except Exception as error:  # the parser's own one-line message
        raise SettingsError(f"{path}: {error}") from None
    user = given(argv, actions)
    for action in actions:
        if action.dest not in user and action.dest in vars(from_file):
            setattr(args, action.dest, getattr(from_file, action.dest))
    return args, path
