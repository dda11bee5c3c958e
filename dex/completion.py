"""Shell completion for `dex`, generated from its argparse parser.

`dex completion bash` prints a bash script (one `complete -F _dex dex`);
`dex completion zsh` prints the same behind zsh's bashcompinit. The script is
a table, written once from the parser, of each command path's subcommands,
the words it takes (subcommands and positional choices), options and the choices an option or a positional takes, and a small
function that finds the path in the words typed so far. So it never drifts
from the parser, and it runs nothing at completion time (no Python start-up
per Tab).

Invariant: every word the script offers is a subcommand, an option or a
choice that the parser accepts at that point.
"""

from __future__ import annotations

import argparse
import shlex

SHELLS = ("bash", "zsh")
FILE_OPTIONS = ("--config", "--key", "--out", "--data", "--log-file")  # complete to file names


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]):
    """(path, parser) for the root and every subcommand, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, (*path, name))


def _table(parser: argparse.ArgumentParser) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    commands: dict[str, list[str]] = {}
    subs: dict[str, list[str]] = {}
    opts: dict[str, list[str]] = {}
    choices: dict[str, list[str]] = {}
    for path, p in _walk(parser, ()):
        key = " ".join(path)
        words: list[str] = []
        positional_choices: list[str] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                words += list(action.choices)
            elif action.option_strings:
                opts.setdefault(key, []).extend(action.option_strings)
                if action.choices:
                    for option in action.option_strings:
                        choices[f"{key} {option}".strip()] = [str(c) for c in action.choices]
            elif action.choices:
                positional_choices += [str(c) for c in action.choices]
        commands[key] = words
        subs[key] = words + positional_choices
    return commands, subs, opts, choices


def _case(name: str, table: dict[str, list[str]]) -> str:
    arms = "\n".join(f"        {shlex.quote(k)}) echo {shlex.quote(' '.join(v))} ;;" for k, v in sorted(table.items()) if v)
    return f"{name}() {{\n    case \"$1\" in\n{arms}\n    esac\n}}\n"


def bash_script(parser: argparse.ArgumentParser) -> str:
    commands, subs, opts, choices = _table(parser)
    files = "|".join(FILE_OPTIONS)
    return f"""# bash completion for dex: `source <(dex completion bash)`, or save it under
# ~/.local/share/bash-completion/completions/dex
{_case("_dex_commands", commands)}{_case("_dex_words", subs)}{_case("_dex_options", opts)}{_case("_dex_choices", choices)}
_dex() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" path="" word i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case " $(_dex_commands "$path") " in
            *" $word "*) [[ "$word" != -* ]] && path="${{path:+$path }}$word" ;;
        esac
    done
    local wanted
    wanted="$(_dex_choices "${{path:+$path }}$prev")"
    if [[ -n "$wanted" ]]; then
        COMPREPLY=($(compgen -W "$wanted" -- "$cur"))
        return
    fi
    case "$prev" in
        {files}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_dex_options "$path")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_dex_words "$path")" -- "$cur"))
    fi
}}
complete -F _dex dex
"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    return ("#compdef dex\n# zsh completion for dex: `source <(dex completion zsh)` in ~/.zshrc\n"
            "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser))


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    assert shell in SHELLS, shell
    return bash_script(parser) if shell == "bash" else zsh_script(parser)
