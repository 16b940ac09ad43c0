"""Command line: ``recrepro run | progress | diff | book | data | list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .catalog import NOTEBOOKS
from .data.registry import DATASETS, ENV_VAR, DataError


def _stems_and_parameters(args: argparse.Namespace) -> tuple[list[str], dict] | None:
    """The notebooks and ``-p`` parameters of a command line (None after printing what is wrong)."""
    stems = [Path(s).stem for s in args.notebooks] or list(NOTEBOOKS)
    unknown = [s for s in stems if s not in NOTEBOOKS]
    if unknown:
        print(f"unknown notebook(s) {unknown}; valid notebooks: {', '.join(NOTEBOOKS)}", file=sys.stderr)
        return None
    extra = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"--param expects NAME=VALUE (YAML value), got {item!r}", file=sys.stderr)
            return None
        extra[name] = yaml.safe_load(value)
    return stems, extra


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_many

    parsed = _stems_and_parameters(args)
    if parsed is None:
        return 2
    stems, extra = parsed
    run_many(
        stems,
        args.profile,
        jobs=args.jobs,
        device=args.device,
        data_root=args.data_root,
        force=args.force,
        units_only=args.units_only,
        extra_parameters=extra,
    )
    return 0


def _cmd_progress(args: argparse.Namespace) -> int:
    from .data.registry import resolve_data_root
    from .runner import checkpoint_folder, project_root, resume_files, run_parameters, unit_progress

    parsed = _stems_and_parameters(args)
    if parsed is None:
        return 2
    stems, extra = parsed
    root, droot = project_root(), resolve_data_root(args.data_root)
    for stem in stems:
        params = run_parameters(args.profile, args.device, droot, root, extra)
        folder = checkpoint_folder(stem, params, root, droot)
        if args.resume_files:
            print("\n".join(p.relative_to(root).as_posix() for p in resume_files(folder)))
            continue
        rows = unit_progress(folder)
        print(f"{stem} [{args.profile}]: {folder.relative_to(root)} ({len(rows)} files)")
        for modified, kind, name, position in rows:
            print(f"  {modified}  {kind:19s}  {name}" + (f"  ({position})" if position else ""))
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from .claims import load_claims
    from .compare import diff, render
    from .results import load_all_metrics
    from .runner import project_root

    root = project_root()
    claims = load_claims(root / "results" / "claims.csv")
    metrics = load_all_metrics(root / "results", list(NOTEBOOKS))
    kinds = ("paper", "code-output", "external") if args.all else ("paper", "code-output")
    print(render(diff(claims, metrics, paper=args.paper, kinds=kinds), args.format))
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from .book import build_book

    return build_book(
        data_root=args.data_root, run_missing=not args.no_run, build_html=not args.no_html, device=args.device
    )


def _cmd_data(args: argparse.Namespace) -> int:
    from .data.registry import fetch, verify

    names = args.names or list(DATASETS)
    failed = 0
    for name in names:
        try:
            files = fetch(name, args.data_root) if args.action == "fetch" else verify(name, args.data_root)
            print(f"ok       {name}: {len(files)} file(s) verified")
        except DataError as err:
            failed += 1
            print(f"MISSING  {name}: {err}" if isinstance(err, FileNotFoundError) else f"BAD      {name}: {err}")
    return 1 if failed and args.strict else 0


def _cmd_list(_: argparse.Namespace) -> int:
    for nb in NOTEBOOKS.values():
        print(f"{nb.stem:32s} {nb.paper:14s} {nb.title}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recrepro", description="Reproducibility study of five recommender papers.")
    sub = p.add_subparsers(dest="command", required=True)
    data_root_help = f"folder holding the datasets (default: ${ENV_VAR})"

    r = sub.add_parser("run", help="execute notebooks with papermill and publish their results")
    r.add_argument("notebooks", nargs="*", help="notebook stems or paths (default: all)")
    r.add_argument("--profile", choices=["smoke", "full"], default="smoke")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    r.add_argument("--data-root", default=None, help=data_root_help)
    r.add_argument("--force", action="store_true", help="re-run even if the inputs are unchanged")
    r.add_argument(
        "--units-only",
        action="store_true",
        help="compute and checkpoint the units, publish nothing: a second worker beside a run that differs "
        "only in seeds or methods (e.g. -p 'seeds=[4, 3]' beside seeds 0-4, or -p 'methods=[\"lrml-code\"]' "
        "beside every method) shares its finished units",
    )
    r.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time")
    r.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra notebook parameter, value parsed as YAML (e.g. -p 'seeds=[0, 1]' -p max_epochs=100)",
    )
    r.set_defaults(func=_cmd_run)

    pr = sub.add_parser(
        "progress",
        help="the checkpoint folder a run with these options uses, and its finished units and training "
        "checkpoints (give the same options as to run)",
    )
    pr.add_argument("notebooks", nargs="*", help="notebook stems or paths (default: all)")
    pr.add_argument("--profile", choices=["smoke", "full"], default="smoke")
    pr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    pr.add_argument("--data-root", default=None, help=data_root_help)
    pr.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="as for run")
    pr.add_argument(
        "--resume-files",
        action="store_true",
        help="print only the files to commit for the next session to resume the run (finished units and the "
        "checkpoints of fits stopped mid-way), one path a line: `... | xargs git add -f`",
    )
    pr.set_defaults(func=_cmd_progress)

    d = sub.add_parser("diff", help="paper vs ours for every claim, with computed status")
    d.add_argument("--paper", default=None, help="one paper key, e.g. monti2017")
    d.add_argument("--format", choices=["text", "markdown", "csv", "json"], default="text")
    d.add_argument("--all", action="store_true", help="include numbers from other papers (ext: rows)")
    d.set_defaults(func=_cmd_diff)

    b = sub.add_parser("book", help="compile the book from results (smoke-runs tables that have no result)")
    b.add_argument("--data-root", default=None, help=data_root_help)
    b.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    b.add_argument("--no-run", action="store_true", help="do not run missing tables, just mark them")
    b.add_argument("--no-html", action="store_true", help="write the pages but do not call jupyter-book")
    b.set_defaults(func=_cmd_book)

    g = sub.add_parser("data", help="verify or download datasets")
    g.add_argument("action", choices=["verify", "fetch"])
    g.add_argument("names", nargs="*", help=f"datasets (default: all): {', '.join(DATASETS)}")
    g.add_argument("--data-root", default=None, help=data_root_help)
    g.add_argument("--strict", action="store_true", help="exit 1 if any dataset is missing or bad")
    g.set_defaults(func=_cmd_data)

    sub.add_parser("list", help="list the notebooks (one per reported table)").set_defaults(func=_cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (DataError, KeyError, ValueError, RuntimeError) as err:
        print(f"recrepro {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
