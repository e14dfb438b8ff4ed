"""One rule for options given twice on the command line: a list option accumulates, any other is refused.

argparse keeps the last value of a repeated single-valued option without a word, so `--photos a.jpg --photos b.jpg`
used to fuse only b.jpg and `-o a.tif -o b.tif` wrote only b.tif. `refuse_repeats` walks a finished parser (every
sub-command) and turns each single-valued option into one that fails on its second occurrence, naming the option;
list options (action 'append' or 'extend') are left to accumulate. Applied once in build_parser, so no option added
later can slip past it.
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

_SEEN = "_geoclip_options_seen"


class _Once(argparse.Action):
    """Mixed into a store action: the second occurrence is an argparse error (exit status 2, usage shown)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        seen = getattr(namespace, _SEEN, None)
        if seen is None:
            seen = set()
            setattr(namespace, _SEEN, seen)
        if self.dest in seen:
            names = "/".join(self.option_strings)
            parser.error(f"{names} was given twice; give it once (only list options such as --photos, -o of "
                         "photos/text, accumulate)")
        seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


_SINGLE = (argparse._StoreAction, argparse._StoreConstAction, argparse._StoreTrueAction,
           argparse._StoreFalseAction)


def refuse_repeats(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make every single-valued option of `parser` and its sub-parsers refuse a second occurrence."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                refuse_repeats(sub)
        elif action.option_strings and type(action) in _SINGLE:
            action.__class__ = type(f"Once{type(action).__name__}", (_Once, type(action)), {})
    return parser


def strip_seen(args: argparse.Namespace) -> argparse.Namespace:
    """The namespace without refuse_repeats' bookkeeping."""
    if hasattr(args, _SEEN):
        delattr(args, _SEEN)
    return args

