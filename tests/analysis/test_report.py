"""`grscale fit` and `grscale report` end to end on a generated sweep, W&B offline."""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import register
from scaling.errors import GrscaleError
from tests.analysis.synth import chinchilla, failed_trial, results_table

LAW = dict(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """Two families, five sizes, five budgets, two seeds, and one diverged trial."""
    rng = np.random.default_rng(0)
    budgets = np.logspace(15, 19, 5)
    sizes = np.logspace(6, 9, 5)
    table = pd.concat([
        results_table(chinchilla(**LAW), family="hstu", sizes={f"hstu-{i}": n for i, n in enumerate(sizes)},
                      budgets=budgets, seeds=2, noise=0.01, rng=rng, sweep="demo"),
        results_table(chinchilla(2.5, 300.0, 0.3, 300.0, 0.2), family="dlrm",
                      sizes={f"dlrm-{i}": n for i, n in enumerate(sizes)}, budgets=budgets, seeds=2, noise=0.01,
                      rng=rng, sweep="demo"),
        failed_trial("dlrm", "diverged", "loss became inf at step 7", sweep="demo"),
    ])
    path = tmp_path_factory.mktemp("runs") / "demo"
    path.mkdir()
    table.to_parquet(path / "results.parquet")
    return path


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="grscale")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_fit_writes_fits_json_and_prints_table(sweep_dir, tmp_path, capsys):
    assert run_cli(["fit", str(sweep_dir / "results.parquet"), "--bootstrap", "50", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "90% low" in out
    fits = json.loads((tmp_path / "fits.json").read_text())
    assert set(fits["fits"]) == {"hstu", "dlrm"}
    assert fits["metric"]["fitted"] == "test/nll"
    assert fits["fits"]["hstu"]["intervals"]["saturating.alpha"]["level"] == 0.9
    assert fits["excluded_trials"][0]["reason"] == "diverged: loss became inf at step 7"
    assert fits["comparison"]["plateau"]["family"] == "dlrm"


def test_fit_one_family_next_to_results(sweep_dir):
    assert run_cli(["fit", str(sweep_dir), "--family", "hstu", "--bootstrap", "20"]) == 0
    assert set(json.loads((sweep_dir / "fits.json").read_text())["fits"]) == {"hstu"}


def test_fit_refuses_when_nothing_can_be_fitted(tmp_path):
    failed_trial("dlrm", "diverged", "NaN loss").to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(GrscaleError, match="all 1 runs of family 'dlrm' diverged"):
        run_cli(["fit", str(tmp_path / "results.csv"), "--bootstrap", "5"])


def test_report_writes_self_contained_html_figures_and_wandb_run(sweep_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    assert run_cli(["report", str(sweep_dir), "--bootstrap", "100", "--wandb-project", "grscale-test"]) == 0
    report = sweep_dir / "report"
    for stem in ("quality_vs_flops", "metrics_vs_flops", "fitted_laws", "isoflop", "frontier", "residuals"):
        assert (report / f"{stem}.png").stat().st_size > 1000
        assert (report / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    md = (report / "report.md").read_text()
    assert "dlrm-bad-C1e+14-diverged" in md and "diverged: loss became inf at step 7" in md
    assert "AIC prefers" in md and "Extrapolation check" in md and "Plateau test" in md
    html = (report / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(sources) == 6 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in html and "<script" not in html
    assert "loss became inf at step 7" in html

    import wandb

    wandb.teardown()  # the offline transaction log is complete once the W&B service has closed it
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    media = {p.name.split("_")[0] for p in (run_dir / "files" / "media").rglob("*") if p.is_file()}
    assert {"quality", "metrics", "fitted", "isoflop", "frontier", "residuals", "trials", "parameters"} <= media
    (log,) = run_dir.glob("*.wandb")
    data = log.read_bytes()
    for key in (b"hstu/alpha", b"dlrm/alpha_high", b"hstu/frontier_exponent", b"comparison/plateau", b"grscale-test"):
        assert key in data


def test_report_without_wandb(sweep_dir, capsys):
    assert run_cli(["report", str(sweep_dir), "--bootstrap", "20", "--no-wandb"]) == 0
    assert "W&B" not in capsys.readouterr().out


def test_report_elsewhere_stands_on_its_own(sweep_dir, tmp_path):
    out = tmp_path / "study" / "retrieval"
    assert run_cli(["report", str(sweep_dir), "--bootstrap", "20", "--no-wandb", "--out", str(out)]) == 0
    assert (out / "report.md").exists() and (out / "quality_vs_flops.png").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), pd.read_parquet(sweep_dir / "results.parquet"))
    fits = json.loads((out / "fits.json").read_text())
    assert set(fits["fits"]) == {"hstu", "dlrm"} and fits["n_resamples"] == 20
    trials = pd.read_csv(out / "trials.csv")
    frame = pd.read_parquet(sweep_dir / "results.parquet")
    assert len(trials) == frame["trial_id"].nunique() and trials["eval_kind"].eq("final").all()
    one = trials.iloc[0]
    source = frame[(frame["trial_id"] == one["trial_id"]) & frame["eval_kind"].eq("final")].iloc[0]
    assert one["test/nll"] == pytest.approx(source["test/nll"])


def test_analysis_never_loads_torch(sweep_dir, tmp_path):
    code = f"""
import sys
import analysis.cli, analysis.study, analysis.report, analysis.plots, analysis.wandb_log
from analysis.results import load_results
from analysis.study import analyze
from analysis.report import write_report
from pathlib import Path
result = analyze(load_results({str(sweep_dir)!r}), n_resamples=20)
write_report(result, Path({str(tmp_path)!r}))
assert "torch" not in sys.modules, "analysis loaded torch"
print("ok")
"""
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=repo)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_multiplier_sentence_says_in_words_when_no_compute_is_enough():
    from analysis.bootstrap import Interval
    from analysis.compare import Multiplier
    from analysis.report import multiplier_sentence

    finite = multiplier_sentence("hstu", "dlrm", Multiplier(1e13, 0.146, 742.0, Interval(685.0, 808.0, 0.95)), "95%")
    assert "dlrm needs 742x the compute (95% interval 685 to 808;" in finite
    never = multiplier_sentence("hstu", "dlrm", Multiplier(1e13, 0.146, float("inf"), Interval(900.0, float("inf"), 0.95)),
                                "95%")
    assert "infx" not in never
    assert "no finite compute is enough: dlrm's fitted curve never gets there (95% interval 900 to inf)" in never


def _text_file(path: Path) -> Path:
    path.write_text("this is not a table\n")
    return path


def _truncated_parquet(path: Path) -> Path:
    table = results_table(chinchilla(**LAW), family="hstu", sizes={"hstu-s": 1e7}, budgets=np.logspace(15, 19, 5))
    table.to_parquet(path)
    path.write_bytes(path.read_bytes()[:2000])
    return path


def _nonsense_csv(path: Path) -> Path:
    path.write_text("hello,world\n1,2\n\x00\x01,zz\n")
    return path


@pytest.mark.parametrize("make, name, says", [
    (_text_file, "results.parquet", "is not a readable results table: "),
    (_truncated_parquet, "results.parquet", "is not a readable results table: "),
    (_nonsense_csv, "results.csv", "lacks the columns sweep, trial_id"),
])
def test_a_file_that_is_not_a_results_table_gives_one_line(tmp_path, make, name, says):
    path = make(tmp_path / name)
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "scaling.cli", "fit", str(path)], capture_output=True, text=True,
                         check=False, cwd=repo)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"grscale fit: error: {path}") and says in line
    assert not (tmp_path / "fits.json").exists()


def test_unknown_metric_without_direction_gives_one_line(sweep_dir, capsys):
    from scaling.cli import main

    frame = pd.read_parquet(sweep_dir / "results.parquet")
    path = sweep_dir.parent / "coverage.csv"
    frame.assign(**{"test/coverage": frame["test/nll"]}).to_csv(path, index=False)
    assert main(["fit", str(path), "--metric", "test/coverage"]) == 2
    assert capsys.readouterr().err == ("grscale fit: error: metric 'test/coverage' has no known direction: pass "
                                       "--lower-is-better or --higher-is-better\n")
    assert main(["fit", str(path), "--metric", "test/nll", "--higher-is-better"]) == 2
    assert "test/nll is lower-is-better, but --higher-is-better" in capsys.readouterr().err


def test_outputs_are_written_whole(lr_sweep, tmp_path, monkeypatch):
    import scaling.files

    written, real = [], scaling.files.atomic_write
    monkeypatch.setattr(scaling.files, "atomic_write",
                        lambda path, write: (written.append(path.name), real(path, write)))
    out = tmp_path / "report"
    assert run_cli(["report", str(lr_sweep), "--bootstrap", "5", "--no-wandb", "--out", str(out)]) == 0
    names = sorted(written)
    assert {"report.md", "report.html", "fits.json", "trials.csv", "results.parquet", "quality_vs_flops.png"} <= set(
        names)
    assert sorted(p.name for p in out.iterdir()) == names  # every file went through it; no temp file is left

    def interrupted(handle):
        handle.write(b"half a rep")
        raise KeyboardInterrupt

    before = (out / "report.md").read_text()
    with pytest.raises(KeyboardInterrupt):
        scaling.files.atomic_write(out / "report.md", interrupted)
    assert (out / "report.md").read_text() == before
    assert sorted(p.name for p in out.iterdir()) == names


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory):
    """Two sizes, two learning rates per (size, budget): 2e-3 wins on validation at every cell."""
    rng = np.random.default_rng(2)
    law = chinchilla(**LAW)
    parts = [
        results_table(law, validation=lambda n, d, c, s=scale: s * law(n, d, c), family="hstu",
                      sizes={"hstu-0": 1e7, "hstu-1": 1e8}, budgets=np.logspace(15, 19, 5), seeds=2, noise=0.01,
                      rng=rng, sweep="lr", setting={"peak_lr": lr})
        for lr, scale in ((1e-3, 1.05), (2e-3, 1.0))
    ]
    path = tmp_path_factory.mktemp("runs") / "lr"
    path.mkdir()
    pd.concat(parts, ignore_index=True).to_parquet(path / "results.parquet")
    return path


def test_report_and_fits_show_the_selection(lr_sweep, tmp_path):
    out = tmp_path / "report"
    assert run_cli(["report", str(lr_sweep), "--bootstrap", "10", "--no-wandb", "--out", str(out)]) == 0
    fits = json.loads((out / "fits.json").read_text())
    assert fits["selection"] == {"select_on": "validation", "source": "by default", "column": "val/nll"}
    assert len(fits["settings"]) == 10
    assert {(s["chosen"], s["runner_up"], s["at_edge"]) for s in fits["settings"]} == {("lr 2e-3", "lr 1e-3", True)}
    assert fits["fits"]["hstu"]["best_settings"] == ["lr 2e-3"] * 5
    md = (out / "report.md").read_text()
    assert not md.splitlines()[2].startswith("**Selected on test.**")
    assert "## Setting selection" in md and "## Best size per budget" in md
    assert ("| family | budget | size | setting | seeds | val/nll (selects) | test/nll (fitted) | test/hr@10 | "
            "test/ndcg@10 | epochs |") in md
    assert "| hstu | hstu-1 | 1e+19 | 2 | lr 2e-3 | 2 |" in md
    assert "at the edge of its grid: the best rate may lie outside it" in (out / "report.html").read_text()


def test_select_on_flag_overrides_the_table(lr_sweep, tmp_path, capsys):
    assert run_cli(["fit", str(lr_sweep), "--bootstrap", "5", "--out", str(tmp_path), "--select-on", "test"]) == 0
    assert "selected on: test/nll (test from --select-on)" in capsys.readouterr().out
    fits = json.loads((tmp_path / "fits.json").read_text())
    assert fits["selection"] == {"select_on": "test", "source": "from --select-on", "column": "test/nll"}
