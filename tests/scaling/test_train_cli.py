import json

from scaling.cli import main


def test_train_cli_runs_a_trial_from_flags_and_config(tmp_path, capsys):
    config = tmp_path / "trial.yaml"
    config.write_text("max_seq_len: 16\nbatch_size: 32\nnum_negatives: 16\nnum_evals: 3\n")
    out = tmp_path / "run"
    code = main(["train", "--config", str(config), "--family", "hstu", "--size", "hstu-xs", "--budget", "2e8",
                 "--users", "120", "--items", "60", "--mean-seq-len", "10", "--ties", "shuffle", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "hstu-xs retrieval on synthetic" in printed and "test/ndcg@10=" in printed
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["eval_kind"] == "final" and rows[-1]["size"] == "xs"
    info = json.loads((out / "run_info.json").read_text())
    assert info["config"]["synthetic"]["num_users"] == 120 and info["config"]["batch_size"] == 32
    assert info["config"]["ties"] == "shuffle"


def test_train_cli_names_what_is_missing(capsys):
    assert main(["train", "--family", "hstu", "--out", "unused"]) == 2
    assert "missing --size, --budget" in capsys.readouterr().err
