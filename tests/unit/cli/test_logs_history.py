"""#21 findings 13, 15, 17 at the `logs` and `history` verbs: a corrupt record is reported and skipped
(never exit 70), a link at a log's path is refused (never followed), and a backend's terminal escapes
are printed escaped."""

from __future__ import annotations

from xgen_declare.processes.state_store import Record, StateStore

FIX = "fix: remove it (xgen-declare writes it again)"


def state(tmp_path):
    s = StateStore(tmp_path / "state")
    s.logs_dir.mkdir(parents=True)
    s.models_dir.mkdir(parents=True)
    return s


def test_logs_with_a_corrupt_record_reports_it_and_shows_the_log(cli, tmp_path):
    s = state(tmp_path)
    (s.models_dir / "a.json").write_text('{"name": "a", "po')
    s.log_path("a").write_text("line one\nline two\n")
    r = cli("logs", "a", "--state-dir", str(s.root))
    assert (r.code, r.out) == (0, "line one\nline two\n")
    assert r.err == (f"corrupt record {s.models_dir}/a.json: not valid JSON (Unterminated string starting at: "
                     f"line 1 column 15 (char 14)); {FIX}\n")


def test_history_with_a_corrupt_record_exits_1_naming_it(cli, tmp_path):
    s = state(tmp_path)
    (s.models_dir / "a.json").write_text("[1]")
    r = cli("history", "a", "--state-dir", str(s.root))
    assert r.code == 1 and r.out == ""
    assert r.err == f"corrupt record {s.models_dir}/a.json: not a JSON object; {FIX}\n"


def test_history_with_a_corrupt_history_file_reports_it_and_goes_on(cli, tmp_path):
    s = state(tmp_path)
    s.save(Record(name="a"))
    s.history_path("a").parent.mkdir()
    s.history_path("a").write_text("{")
    r = cli("history", "a", "--state-dir", str(s.root))
    assert (r.code, r.out) == (0, "a: no rollout recorded yet\n")
    assert r.err.startswith(f"corrupt record {s.root}/history/a.json: not valid JSON") and r.err.endswith(FIX + "\n")


def test_logs_refuses_a_link_at_the_log_path(cli, tmp_path):
    s = state(tmp_path)
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    s.log_path("a").symlink_to(secret)
    r = cli("logs", "a", "--state-dir", str(s.root))
    assert r.code == 1 and "root:" not in r.out + r.err
    assert r.err == (f"error: {s.log_path('a')}: is a symlink, and this file may not be one (remove the link; "
                     "xgen-declare writes this file itself)\n")


def test_logs_prints_terminal_escapes_escaped(cli, tmp_path):
    s = state(tmp_path)
    s.log_path("a").write_bytes("model alias \x1b]0;pwned\x07 loaded\n\x1b[2J\x9b31mred\tok\n".encode())
    r = cli("logs", "a", "--state-dir", str(s.root))
    assert r.code == 0
    assert r.out == "model alias \\x1b]0;pwned\\x07 loaded\n\\x1b[2J\\x9b31mred\tok\n"


def test_status_with_a_corrupt_record_reports_it_and_shows_the_others(cli, tmp_path):
    s = state(tmp_path)
    s.save(Record(name="good", state="Stopped"))
    (s.models_dir / "a.json").write_text('{"name": "a", "po')
    r = cli("status", "--state-dir", str(s.root), "-o", "json")
    assert r.code == 0 and [row["name"] for row in r.json()] == ["good"]
    r = cli("status", "--state-dir", str(s.root))
    assert r.code == 0 and r.out.splitlines()[1].startswith("good")
    assert (f"corrupt record {s.models_dir}/a.json: not valid JSON (Unterminated string starting at: line 1 "
            f"column 15 (char 14)); {FIX}\n") in r.err


def test_plan_and_down_report_a_corrupt_record_and_go_on(cli, tmp_path, write):
    s = state(tmp_path)
    s.save(Record(name="good", state="Stopped"))
    (s.models_dir / "a.json").write_text("[1]")
    problem = f"corrupt record {s.models_dir}/a.json: not a JSON object; {FIX}\n"
    (tmp_path / "sys").mkdir()
    write("good.yaml", "apiVersion: xgen/v1\nkind: Model\nmetadata: {name: good}\n"
                       "spec: {model_path: /m/x.gguf, backend: llama-server-cpu, enabled: false}\n")
    r = cli("plan", str(write.root), "--state-dir", str(s.root), "--sysfs-root", str(tmp_path / "sys"))
    assert r.code == 0 and problem in r.err, r.err
    r = cli("down", "good", "--state-dir", str(s.root), "--timeout", "5")
    assert problem in r.err and r.code == 0, r.err
