"""Compile the Jupyter Book from committed results.

Every page is generated from ``results/`` and the catalog, so the book can never disagree with the data:
a chapter per paper (paper vs ours with computed status, provenance of each run, figures and the executed
notebooks), a discrepancies page, a data page and a versions page. A table with no committed result is run
under the smoke profile first and labelled so; a result whose inputs changed since it was produced is
flagged stale. The HTML is built with warnings as errors.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from . import __version__  # noqa: E402
from .catalog import NOTEBOOKS, PAPERS  # noqa: E402
from .claims import load_claims  # noqa: E402
from .compare import TOLERANCE_RULE, diff, summarise  # noqa: E402
from .data.registry import DATASETS, ENV_VAR, resolve_data_root  # noqa: E402
from .figures import paper_vs_ours  # noqa: E402
from .results import load_all_metrics, load_run  # noqa: E402
from .runner import git_state, is_stale, project_root, run_notebook  # noqa: E402

GENERATED = "generated"


def _md_table(df: pd.DataFrame) -> str:
    # numbers are shown exactly as formatted (a paper value keeps its printed digits: "20.0" stays "20.0")
    return df.to_markdown(index=False, disable_numparse=True) if len(df) else "*(none)*"


def _run_status(root: Path, data_root: str | None, run_missing: bool, device: str) -> dict[str, dict]:
    """Per notebook: which profile the book shows, its provenance, and whether it is stale."""
    out: dict[str, dict] = {}
    for stem in NOTEBOOKS:
        chosen = None
        for profile in ("full", "smoke"):
            loaded = load_run(root / "results", stem, profile)
            if loaded is not None:
                chosen = (profile, loaded[1])
                break
        if chosen is None and run_missing:
            run_notebook(stem, "smoke", device=device, data_root=data_root)
            chosen = ("smoke", load_run(root / "results", stem, "smoke")[1])
        if chosen is None:
            out[stem] = {"profile": None}
            continue
        profile, prov = chosen
        out[stem] = {"profile": profile, "provenance": prov, "stale": bool(is_stale(stem, profile, data_root))}
    return out


def _provenance_line(stem: str, st: dict) -> str:
    if st["profile"] is None:
        return f"- `{stem}`: **no result** (not run yet)"
    p = st["provenance"]
    flags = []
    if st["profile"] == "smoke":
        flags.append("**smoke profile: reduced budget, numbers not comparable**")
    if st["stale"]:
        flags.append("**stale: code, notebook, parameters or data changed since this result was produced**")
    dirty = " (uncommitted changes)" if p.get("dirty") else ""
    seeds = p.get("seeds", p.get("parameters", {}).get("seeds", "?"))
    return (
        f"- `{stem}`: profile `{st['profile']}`, commit `{p.get('commit', '?')[:10]}`{dirty}, device "
        f"{p.get('device', '?')}, seeds {seeds}, wall time {p.get('wall_seconds', '?')} s, "
        f"run {p.get('started_utc', '?')}, torch {p.get('versions', {}).get('torch', '?')}"
        + (f" — {'; '.join(flags)}" if flags else "")
    )


# the columns every paper-vs-ours table shows (``our_row`` names the result row a claim is matched to)
CLAIM_TABLE_COLUMNS = ["claim_id", "dataset", "method", "our_row", "metric", "paper_value", "ours"]
STATUS_GROUPS = ("reproduced", "not reproduced", "reduced budget", "not run", "no paper value")


def _status_counts(d: pd.DataFrame) -> pd.DataFrame:
    """Claims per paper and status group (the status before its reason: 'reduced budget: 500 of ...' counts as
    'reduced budget'); the reasons are listed on the chapters and the discrepancies page."""
    group = d["status"].str.split(":").str[0].str.split(" \\(").str[0]
    counts = d.assign(status=group).groupby(["paper", "status"]).size().unstack(fill_value=0)
    return counts.reindex(columns=list(STATUS_GROUPS), fill_value=0).reset_index()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_book(
    data_root: str | None = None, run_missing: bool = True, build_html: bool = True, device: str = "auto"
) -> int:
    """Generate the pages under book/generated and build the HTML; returns the jupyter-book exit code."""
    root = project_root()
    book = root / "book"
    gen = book / GENERATED
    if gen.exists():
        shutil.rmtree(gen)
    (gen / "figures").mkdir(parents=True)
    (gen / "executed").mkdir(parents=True)
    status = _run_status(root, data_root, run_missing, device)
    shown = [s for s, st in status.items() if st["profile"] is not None]
    claims = load_claims(root / "results" / "claims.csv")
    metrics = load_all_metrics(root / "results", shown)
    full_diff = diff(claims, metrics)
    git = git_state(root)
    version_line = f"recrepro v{__version__}, results at commit {git['commit'][:10]}"

    for stem in shown:
        src = root / "results" / "runs" / stem / status[stem]["profile"] / f"{stem}.ipynb"
        if src.exists():
            shutil.copy(src, gen / "executed" / f"{stem}.ipynb")

    # intro
    counts = _status_counts(full_diff[full_diff["paper"].isin(PAPERS)])
    _write(
        gen / "intro.md",
        "\n".join(
            [
                f"# recrepro: does it reproduce? (v{__version__})",
                "",
                f"*{version_line}*",
                "",
                "A reproducibility study of five papers that model user–item interactions. Every number on these pages "
                "comes from a notebook executed by papermill on real data; every paper number comes from the claims "
                "registry (`results/claims.csv`), which records how each was known "
                "(verified on the paper's results page, "
                "recalled, authors' code output, or not recovered).",
                "",
                "## How to re-run",
                "",
                "```bash\nmake book            # set up, check data, build this book from committed results\n"
                "make test            # set up and run the tests\n"
                "recrepro run baselines_rating --profile full   # re-execute one table\n"
                "recrepro diff --format markdown               # paper vs ours for every claim\n```",
                "",
                f"Data are read from one folder given by `--data-root` or `${ENV_VAR}`; see [Data](data.md).",
                "",
                "## Status of every claim",
                "",
                f"Tolerance rule: {TOLERANCE_RULE}.",
                "",
                _md_table(counts),
                "",
                "Statuses are computed, never typed: *reproduced*, *not reproduced (ours better/worse)*, "
                "*reduced budget* "
                "(only a smoke-profile run or less than the paper's budget), *not run* (with the reason), or *no paper "
                "value* (the number was not recovered). See [Discrepancies](discrepancies.md).",
                "",
                "## Runs shown in this book",
                "",
                *[_provenance_line(s, status[s]) for s in NOTEBOOKS],
            ]
        )
        + "\n",
    )

    chapters = []
    for key, paper in PAPERS.items():
        d = full_diff[full_diff["paper"] == key] if key != "baselines" else pd.DataFrame()
        nbs = [s for s, nb in NOTEBOOKS.items() if nb.paper == key]
        lines = [f"# {paper.short}", "", f"*{version_line}*", "", paper.citation, "", f"**Claim.** {paper.claim}", ""]
        if key == "baselines":
            lines += _baselines_section(claims, metrics, status, gen)
        else:
            lines += [
                "## Paper vs ours",
                "",
                f"Tolerance rule: {TOLERANCE_RULE}.",
                "",
                *(_tables_by_paper_table(d) if len(d) else ["*(no claims registered)*"]),
                "",
            ]
            if d["rel_delta"].notna().any():
                fig = paper_vs_ours(d)
                fig.savefig(gen / "figures" / f"{key}.png", dpi=110)
                plt.close(fig)
                lines += [f"```{{figure}} figures/{key}.png", f"Ours relative to the paper's value ({key}).", "```", ""]
        measured = [s for s in nbs if NOTEBOOKS[s].headline and s in shown]
        if measured:
            lines += [
                "## All our measurements",
                "",
                "Every (dataset, method) each notebook measured, claimed by the paper or not: mean ± std over "
                "seeds (n = seeds). *budget* says where a row ran less than the paper's protocol.",
                "",
            ]
            for s in measured:
                lines += _measurements(metrics[metrics["notebook"] == s], NOTEBOOKS[s].title, NOTEBOOKS[s].headline)
        lines += ["## Runs", "", *([_provenance_line(s, status[s]) for s in nbs] or ["*No notebook yet.*"]), ""]
        lines += [f"- [{NOTEBOOKS[s].title}](executed/{s}.ipynb)" for s in nbs if s in shown]
        _write(gen / f"{key}.md", "\n".join(lines) + "\n")
        chapters.append(key)

    # discrepancies
    disc = full_diff.merge(claims[["claim_id", "source_note"]], on="claim_id")
    disc = disc[disc["paper"].isin(PAPERS)]
    _write(
        gen / "discrepancies.md",
        "\n".join(
            [
                "# Discrepancies",
                "",
                f"*{version_line}*",
                "",
                f"Every claim of the five papers with its computed status. Tolerance rule: {TOLERANCE_RULE}.",
                "",
                "## Findings computed from the results",
                "",
                *_findings(claims, metrics),
                "",
                "## Every claim",
                "",
                _md_table(disc[[*CLAIM_TABLE_COLUMNS, "status", "source"]]),
                "",
                "## How each paper number is known",
                "",
                *[f"- `{r.claim_id}`: {r.source_note}" for r in disc.itertuples()],
            ]
        )
        + "\n",
    )

    # data
    try:
        droot = resolve_data_root(data_root)
    except Exception:
        droot = None
    rows = []
    for name, ds in DATASETS.items():
        present = droot is not None and all((droot / f).is_file() for f in ds.files)
        for rel, sha in ds.files.items():
            rows.append(
                {"dataset": name, "file": rel, "sha256": sha or "(none recorded)", "here": "yes" if present else "no"}
            )
    _write(
        gen / "data.md",
        "\n".join(
            [
                "# Data",
                "",
                f"*{version_line}*",
                "",
                f"All data are read from one folder, given by `--data-root` or `${ENV_VAR}`. "
                "Files with a recorded SHA-256 "
                "are verified before use; a mismatch stops the run. "
                "**No raw data is in this repository or this book**: "
                "the datasets' terms forbid redistribution, so only derived metrics are published.",
                "",
                "ML-1M: the official `ratings.dat` is used when present; "
                "otherwise a reconstruction with every rating exact "
                "and 198,417 timestamps missing, which stay missing (no split here depends on them).",
                "",
                "## Licences and sources",
                "",
                *[
                    f"- **{ds.title}** (`{n}`): {ds.source}. Terms: {ds.licence} How to get it: {ds.how_to_get}."
                    for n, ds in DATASETS.items()
                ],
                "",
                "## Files and checksums",
                "",
                _md_table(pd.DataFrame(rows)),
            ]
        )
        + "\n",
    )

    # versions
    changelog = (root / "CHANGELOG.md").read_text() if (root / "CHANGELOG.md").exists() else ""
    runs = [
        {
            "notebook": s,
            "profile": st["profile"],
            "commit": st["provenance"].get("commit", "")[:10],
            "run (UTC)": st["provenance"].get("started_utc", ""),
            "stale": st["stale"],
            "recrepro": st["provenance"].get("versions", {}).get("recrepro", ""),
        }
        for s, st in status.items()
        if st["profile"] is not None
    ]
    _write(
        gen / "versions.md",
        "\n".join(
            [
                "# Versions",
                "",
                f"*{version_line}*",
                "",
                "## Runs shown",
                "",
                _md_table(pd.DataFrame(runs)),
                "",
                "## How the committed results changed",
                "",
                "Every commit that changed a committed (full-profile) result, newest first:",
                "",
                _md_table(_results_history(root)),
                "",
                changelog.replace("# Changelog", "## Changelog", 1),
            ]
        )
        + "\n",
    )

    toc = ["format: jb-book", f"root: {GENERATED}/intro", "parts:", "  - caption: Papers", "    chapters:"]
    for key in chapters:
        toc.append(f"      - file: {GENERATED}/{key}")
        nbs = [s for s, nb in NOTEBOOKS.items() if nb.paper == key and s in shown]
        if nbs:
            toc.append("        sections:")
            toc += [f"          - file: {GENERATED}/executed/{s}" for s in nbs]
    toc += [
        "  - caption: Study",
        "    chapters:",
        f"      - file: {GENERATED}/discrepancies",
        f"      - file: {GENERATED}/data",
        f"      - file: {GENERATED}/versions",
    ]
    _write(book / "_toc.yml", "\n".join(toc) + "\n")
    _write(book / "_config.yml", _config(version_line))
    if not build_html:
        return 0
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe), "build", "-W", "-n", "--keep-going", str(book)]
    print("building the book:", " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=root).returncode


def _tables_by_paper_table(d: pd.DataFrame) -> list[str]:
    """One paper-vs-ours table per table of the paper, under a heading naming it (keeps each table narrow)."""
    out: list[str] = []
    cols = [*CLAIM_TABLE_COLUMNS, "status", "source"]
    for table, rows in d.groupby("table", sort=False):
        out += [f"### {table}", "", _md_table(rows[cols]), ""]
    return out


def _measurements(metrics: pd.DataFrame, title: str, headline: tuple[str, ...]) -> list[str]:
    """One notebook's headline metrics as a (dataset, method) x metric table of mean ± std (n), with its budget."""
    shown = metrics[metrics["metric"].isin(headline)]
    if shown.empty:
        return [f"### {title}", "", "*(none of its headline metrics recorded)*", ""]
    if "budget" not in shown.columns:
        shown = shown.assign(budget="")
    shown = shown.assign(budget=shown["budget"].fillna("").map(lambda b: b.removeprefix("reduced: ") or "full"))
    summary = summarise(shown)
    table = summary.pivot_table(
        index=["dataset", "method", "budget"], columns="metric", values="ours", aggfunc="first", sort=False
    )
    table = table[[m for m in headline if m in table.columns]].fillna("").reset_index()
    return [f"### {title}", "", _md_table(table[[c for c in table.columns if c != "budget"] + ["budget"]]), ""]


def _results_history(root: Path) -> pd.DataFrame:
    """Commits that touched committed metrics, from git (empty outside a git checkout)."""
    cmd = ["git", "log", "--date=short", "--format=%h\t%ad\t%s", "--name-only", "--", "results/runs/*/full/metrics.csv"]
    try:
        out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return pd.DataFrame()
    rows, current = [], None
    for line in out.splitlines():
        if "\t" in line:
            commit, date, subject = line.split("\t", 2)
            current = {"commit": commit, "date": date, "message": subject}
        elif line.strip() and current is not None:
            rows.append({**current, "table": line.split("/")[2]})
    return pd.DataFrame(rows)


def _baselines_section(claims: pd.DataFrame, metrics: pd.DataFrame, status: dict, gen: Path) -> list[str]:
    from .compare import summarise
    from .figures import relative_rmse

    m = metrics[metrics["notebook"] == "baselines_rating"] if "notebook" in metrics else metrics
    if m.empty:
        return ["*No result yet.*", ""]
    ours = summarise(m).pivot(index="method", columns="dataset", values="ours").reset_index()
    datasets = sorted(set(m["dataset"]))
    pub = claims[claims["dataset_key"].isin(datasets) & claims["value_num"].notna() & (claims["metric_key"] == "rmse")]
    pub = pub[["dataset_key", "method", "value", "paper", "source"]].rename(
        columns={"dataset_key": "dataset", "value": "published RMSE"}
    )
    fig = relative_rmse(m, reference="global-mean")
    fig.savefig(gen / "figures" / "baselines.png", dpi=110)
    plt.close(fig)
    prov = status.get("baselines_rating", {}).get("provenance", {})
    return [
        "## Our baselines (test RMSE, mean ± std over seeds)",
        "",
        f"Search budget: {prov.get('search_budget', 'see the notebook')}. {prov.get('profile_note', '')}. "
        "Biased MF is tuned and early-stopped on a validation split carved from the training data (10%); the test "
        "RMSE is read at the best validation epoch.",
        "",
        _md_table(ours),
        "",
        "```{figure} figures/baselines.png",
        "Test RMSE relative to the global mean (bars: mean over seeds, whiskers: std).",
        "```",
        "",
        "## Published numbers on the same splits",
        "",
        "For comparison: what the papers (and later work, `ext:` rows) report on exactly these splits. "
        '"(ours)" in a method name is the paper\'s own wording for its method.',
        "",
        _md_table(pub.sort_values(["dataset", "published RMSE"])),
        "",
    ]


def _findings(claims: pd.DataFrame, metrics: pd.DataFrame) -> list[str]:
    """Paper methods whose published number a simple baseline of ours beats (full-profile results only)."""
    from .compare import summarise

    if metrics.empty:
        return ["*No results yet.*"]
    full = metrics[metrics["profile"] == "full"] if "profile" in metrics else metrics
    base = full[full["method"].isin(["global-mean", "user-mean", "item-mean", "user-item-mean", "biased-mf"])]
    if base.empty:
        return ["*No full-profile baseline results yet.*"]
    best = summarise(base).sort_values("mean").groupby(["dataset", "metric"]).head(1)
    out = []
    paper_rows = claims[
        (claims["kind"] == "paper") & (claims["is_paper_method"] == "true") & claims["value_num"].notna()
    ]
    for _, b in best.iterrows():
        beaten = paper_rows[
            (paper_rows["dataset_key"] == b["dataset"])
            & (paper_rows["metric_key"] == b["metric"])
            & (paper_rows["value_num"] > b["mean"])
        ]
        for _, c in beaten.iterrows():
            out.append(
                f"- **{b['dataset']}**: our `{b['method']}` ({b['ours']}) beats the published {c['method']} "
                f"({c['value']}, {c['paper']}, claim `{c['claim_id']}`, {c['source']})."
            )
    return out or ["- No published paper-method number is beaten by our simple baselines."]


def _config(version_line: str) -> str:
    return f"""# generated by `recrepro book`; edit src/recrepro/book.py instead
title: "recrepro v{__version__}"
author: recrepro contributors
copyright: "2026"
only_build_toc_files: true
execute:
  execute_notebooks: "off"
html:
  use_download_button: true
  extra_footer: "{version_line}"
sphinx:
  config:
    nitpicky: true
    suppress_warnings: ["mystnb.unknown_mime_type"]
    html_show_sourcelink: false
"""
