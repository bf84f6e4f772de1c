"""`grscale dashboard`: the sweep's W&B workspace, built from its spec and saved with wandb-workspaces.

The workspace shows the sweep's runs only (its W&B group), grouped by family then size and
coloured by size, with training FLOPs as the x-axis on a log scale: a section per metric of the
task (validation and test against FLOPs, the final test value against the budget), one for the
learning rate, throughput (tokens/s; MFU where the rows carry it) and the achieved/planned FLOPs
ratio, and one for the fitted laws that `grscale report` logs (analysis/wandb_log.py).

Its spec is always written to the sweep folder (DASHBOARD_FILE: {"url", "view"}). Saving needs
W&B online: never tried when WANDB_MODE is offline or nobody is logged in, and bounded by a
timeout otherwise; where it cannot be saved, the command says how to save the written spec later.
The saving goes through a WorkspaceStore, so tests put a local one in place of W&B.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from analysis.wandb_log import LAW_SERIES, SCALING_X, law_key
from scaling.errors import GrscaleError
from scaling.files import atomic_write_text
from scaling.schema import DASHBOARD_FILE, RESULTS_FILE, SPEC_FILE, TASKS, higher_is_better
from sweeps.wandb_logging import TOKENS_PER_S, bounded, resolve_mode

if TYPE_CHECKING:
    from wandb_workspaces.workspaces import Workspace

    from sweeps.spec import SweepSpec

X_AXIS = "flops"  # every trial row is logged against it (sweeps/wandb_logging.py)
MFU_COLUMN = "mfu"  # a row column, charted where the sweep's rows carry it
SAVE_TIMEOUT_S = 20.0
# Sizes in the order a spec lists them take these colours, the same in every family.
SIZE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf")

class WorkspaceStore(Protocol):
    def save(self, view: dict[str, Any], entity: str | None) -> tuple[str, dict[str, Any]]:
        """Save a workspace spec; returns its URL and the spec as saved (with its view name and id)."""
        ...


# --- the workspace ------------------------------------------------------------------------------------
def metric_order(task: str) -> list[str]:
    """The task's metrics (scaling.schema.TASKS), its default metric first."""
    spec = TASKS[task]
    return [spec.default_metric, *(m for m in spec.metrics if m != spec.default_metric)]


def size_colors(spec: SweepSpec) -> dict[tuple[str, str], str]:
    """(family, size) -> colour: a size has one colour across families."""
    sizes: list[str] = []
    for family_sizes in spec.families.values():
        sizes += [s for s in family_sizes if s not in sizes]
    return {(family, size): SIZE_COLORS[sizes.index(size) % len(SIZE_COLORS)]
            for family, family_sizes in spec.families.items() for size in family_sizes}


def _against_flops(column: str, title: str, aggregate: str | None = None):
    import wandb_workspaces.reports.v2 as wr

    # Runs are grouped by (family, size): a panel draws each group's best run at every FLOPs count
    # (min or max by the metric's direction) and the spread of the group's runs.
    grouped = {"groupby_aggfunc": aggregate, "groupby_rangefunc": "minmax"} if aggregate else {}
    return wr.LinePlot(title=title, x=X_AXIS, y=[column], log_x=True, title_x="training FLOPs", title_y=column,
                       **grouped)


def _metric_section(metric: str, is_open: bool):
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    best = "max" if higher_is_better(metric) else "min"
    panels = [_against_flops(f"{split}/{metric}", f"{split}/{metric} vs training FLOPs", best) for split in ("val", "test")]
    panels.append(wr.ScatterPlot(title=f"final test/{metric} vs budget", x=wr.Config("budget"),
                                 y=wr.SummaryMetric(f"test/{metric}"), log_x=True))
    return ws.Section(name=metric, panels=panels, is_open=is_open, panel_settings=ws.SectionPanelSettings(x_axis=X_AXIS))


def _compute_section(logged: set[str]):
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    panels = [_against_flops("lr", "learning rate vs training FLOPs"),
              _against_flops(TOKENS_PER_S, "tokens/s (training and evaluation) vs training FLOPs")]
    if MFU_COLUMN in logged:
        panels.append(_against_flops(MFU_COLUMN, "MFU vs training FLOPs"))
    panels.append(wr.ScatterPlot(title="achieved / planned FLOPs vs budget", x=wr.Config("budget"),
                                 y=wr.SummaryMetric("flops_ratio"), log_x=True))
    return ws.Section(name="learning rate, throughput and budget", panels=panels, is_open=True,
                      panel_settings=ws.SectionPanelSettings(x_axis=X_AXIS))


def _laws_section(families: list[str]):
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    panels = [wr.LinePlot(title=f"{family}: fitted law, {LAW_SERIES[2]}-{LAW_SERIES[3]} band and measured points",
                          x=SCALING_X, y=[law_key(family, s) for s in LAW_SERIES], log_x=True, log_y=True,
                          title_x="training FLOPs")
              for family in families]
    return ws.Section(name="scaling laws (grscale report)", panels=panels, is_open=True,
                      panel_settings=ws.SectionPanelSettings(x_axis=SCALING_X))


def build_workspace(spec: SweepSpec, logged: set[str] = frozenset(), entity: str | None = None) -> Workspace:
    """The sweep's workspace; `logged` names the row columns its runs carry so far (an optional
    panel, MFU, needs its column)."""
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces import expr

    from sweeps.grid import expand

    metrics = metric_order(spec.task)
    columns = ["config:family", "config:size", "config:budget_bucket", "config:peak_lr", "config:variant",
               "config:seed", f"summary:test/{metrics[0]}", "summary:flops_ratio", "summary:budget_missed"]
    return ws.Workspace(
        entity=entity or spec.wandb.entity or "", project=spec.wandb.project, name=f"{spec.name} (grscale sweep)",
        sections=[*(_metric_section(m, i == 0) for i, m in enumerate(metrics)), _compute_section(set(logged)),
                  _laws_section(list(spec.families))],
        settings=ws.WorkspaceSettings(x_axis=X_AXIS, max_runs=max(10, len(expand(spec)) + 1)),
        runset_settings=ws.RunsetSettings(
            filters=expr.And(expr.Metric("Group") == spec.name),
            groupby=[expr.Config("family"), expr.Config("size")],
            group_colors={ws.GroupPath(family, size): color for (family, size), color in size_colors(spec).items()},
            pinned_columns=columns,
        ),
    )


def workspace_spec(workspace: Workspace) -> dict[str, Any]:
    """The workspace as the JSON W&B stores (a view)."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def workspace_from_spec(view: dict[str, Any]) -> Workspace:
    import wandb_workspaces.workspaces as ws
    from wandb_workspaces.workspaces import internal

    return ws.Workspace._from_model(internal.View.model_validate(view))


# --- saving -------------------------------------------------------------------------------------------
class WandbWorkspaceStore:
    """Saves to W&B; the entity is the spec's, else --entity, else the logged-in user's default."""

    def save(self, view: dict[str, Any], entity: str | None) -> tuple[str, dict[str, Any]]:
        import wandb

        workspace = workspace_from_spec(view)
        workspace.entity = entity or workspace.entity or wandb.Api(timeout=int(SAVE_TIMEOUT_S)).default_entity
        workspace.save()
        saved = dict(view, entity=workspace.entity, name=workspace._internal_name, id=workspace._internal_id)
        return workspace.url, saved


@dataclass(frozen=True)
class Dashboard:
    path: Path  # the spec, in the sweep folder
    url: str | None  # None: not saved
    reason: str | None = None  # why not


def save_command(path: Path) -> str:
    return f"grscale dashboard --spec {path}"


def _offline_reason() -> str | None:
    """Why no save is tried (None: W&B is online)."""
    mode = resolve_mode(True)
    if mode == "online":
        return None
    return "W&B is disabled" if mode is None else "W&B is offline (WANDB_MODE=offline, or no API key)"


def _write(path: Path, url: str | None, view: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps({"url": url, "view": view}, indent=1) + "\n")


def _save(path: Path, view: dict[str, Any], entity: str | None, store: WorkspaceStore | None,
          timeout_s: float) -> Dashboard:
    """Write the spec, then save it unless W&B is offline; a failure to save is reported, not raised."""
    _write(path, None, view)
    reason = _offline_reason()
    if reason is None:
        store = store or WandbWorkspaceStore()
        try:
            url, saved = bounded(lambda: store.save(view, entity), timeout_s)
        except Exception as error:  # noqa: BLE001 - no network, a refused key, a timeout: the spec stays
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            reason = f"could not save to W&B ({first[:200]})"
        else:
            _write(path, url, saved)
            return Dashboard(path, url)
    return Dashboard(path, None, reason)


def _logged_columns(sweep_dir: Path) -> set[str]:
    results = sweep_dir / RESULTS_FILE
    if not results.exists():
        return set()
    import pyarrow.parquet as pq

    return set(pq.read_schema(results).names)


def publish(spec: SweepSpec, sweep_dir: Path, *, entity: str | None = None, store: WorkspaceStore | None = None,
            timeout_s: float = SAVE_TIMEOUT_S) -> Dashboard:
    """Build the sweep's workspace, write its spec to the sweep folder and save it where W&B is online.
    A spec saved before keeps its view: saving again updates that workspace instead of adding one."""
    path = sweep_dir / DASHBOARD_FILE
    view = workspace_spec(build_workspace(spec, _logged_columns(sweep_dir), entity))
    if path.exists():
        before = _read(path)["view"]
        view |= {k: before[k] for k in ("name", "id") if before.get(k)}
    return _save(path, view, entity, store, timeout_s)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GrscaleError(f"{path} does not exist (`grscale dashboard SWEEP_DIR` writes it)") from None
    except (OSError, ValueError) as error:
        raise GrscaleError(f"{path} is not a dashboard spec: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("view"), dict):
        raise GrscaleError(f"{path} is not a dashboard spec: it has no \"view\"")
    return data


def save_spec_file(path: Path, *, entity: str | None = None, store: WorkspaceStore | None = None,
                   timeout_s: float = SAVE_TIMEOUT_S) -> Dashboard:
    """Save a spec `publish` wrote (as its `save_command` says), recording the URL in it."""
    view = _read(path)["view"]
    try:
        workspace_from_spec(view)
    except Exception as error:  # noqa: BLE001 - pydantic's message, in one line
        raise GrscaleError(f"{path} is not a valid workspace spec: {str(error).splitlines()[0]}") from None
    return _save(Path(path), view, entity, store, timeout_s)


def load_sweep_spec(sweep_dir: Path) -> SweepSpec:
    from sweeps.spec import load_spec

    path = sweep_dir / SPEC_FILE
    if not path.exists():
        raise GrscaleError(f"{sweep_dir} holds no {SPEC_FILE}: not a sweep folder (`grscale sweep run` writes it)")
    return load_spec(path)


def describe(dashboard: Dashboard) -> str:
    """What the command prints: the URL, or where the spec is and how to save it."""
    if dashboard.url:
        return f"W&B workspace: {dashboard.url}\nits spec: {dashboard.path}"
    return (f"{dashboard.reason}: wrote the workspace spec to {dashboard.path}\n"
            f"save it when W&B is reachable with: {save_command(dashboard.path)}")
