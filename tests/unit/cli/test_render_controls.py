"""#21 finding 17 at `render`: an alias with terminal escapes is refused (field and hint, exit 1), and a
value that may hold control characters (an env value) is printed by `-o shell` in $'..\\xHH..' form,
never raw."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO, model_yaml

INVENTORY = str(REPO / "tests" / "fixtures" / "all-backends.yaml")
PWNED = "\x1b]0;pwned\x07"


def test_an_alias_with_terminal_escapes_is_refused_naming_the_field(cli, write):
    path = write("a.yaml", model_yaml("a", alias=["ok", PWNED]))
    r = cli("render", str(write.root), "-o", "shell", "--inventory", INVENTORY)
    assert r.code == 1 and "\x1b" not in r.out + r.err
    assert r.err == (f"{path}:6: spec.alias: each item must not contain control characters (\\x1b at position 0): "
                     "remove it (newlines, NUL bytes and terminal escapes are refused, a tab is allowed)\n")


def test_render_shell_writes_control_characters_escaped_and_copy_pasteable(cli, write):
    write("a.yaml", model_yaml("a", env={"BANNER": f"hi{PWNED}\nthere"}))
    r = cli("render", str(write.root), "-o", "shell", "--inventory", INVENTORY)
    assert r.code == 0, r.err
    assert "\x1b" not in r.out and "\x07" not in r.out
    line = next(x for x in r.out.splitlines() if "BANNER=" in x)
    assert "BANNER=$'hi\\x1b]0;pwned\\x07\\x0athere'" in line
    value = line.split("BANNER=", 1)[1].split(" ", 1)[0]
    assert subprocess.run(["bash", "-c", f"printf %s {value}"], capture_output=True, timeout=10).stdout.decode() \
        == f"hi{PWNED}\nthere"
