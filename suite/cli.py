"""The ``distill`` command. It parses arguments and calls the library; errors are one line unless ``--debug``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from typing import Any

from suite.errors import SuiteError

# Nothing in this tool may reach the Hugging Face hub; set before transformers is imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _recipe_for(
    domain: Any, profile: str, data: dict, overrides: list[str], output_dir: str | None, publish: bool = False
) -> Any:
    """Recipe defaults <- profile <- YAML data <- ``--set`` overrides <- ``--output-dir`` <- ``--publish``.

    A run writes under its output directory only; ``--publish`` sends the report to ``docs/results`` and the model
    card to ``models/DOMAIN`` (what the repository commits), for packs that have those fields.
    """
    from suite.config import apply_overrides, build_config, deep_merge

    if profile not in domain.profiles:
        raise SuiteError(f"unknown profile '{profile}' for {domain.name} (known: {', '.join(domain.profiles)})")
    extra = [f"output_dir={output_dir}"] if output_dir else []
    if publish:
        from suite.runner import RunOutputs

        if not issubclass(domain.recipe, RunOutputs):
            raise SuiteError(f"domain '{domain.name}' writes no report or model card to publish")
        extra += ["report_dir=docs/results", f"model_card_dir=models/{domain.name}"]
    profile_data = apply_overrides({}, domain.profiles[profile])
    return build_config(domain.recipe, deep_merge(profile_data, data), [*overrides, *extra])


def _opening_line(domain: Any, recipe: Any, how: str) -> str:
    from suite.runner import RunOutputs

    where = f"writing to {recipe.output_dir}"
    if isinstance(recipe, RunOutputs):  # packs with a report say where it and the model card go
        where += f" (report: {recipe.report_path}, model card: {recipe.model_card_path})"
    return f"{how}: {domain.description}; {where}"


def _start(domain: Any, recipe: Any, how: str, args: argparse.Namespace) -> int:
    """Say what runs and where, record the resolved recipe in the run's output directory (``recipe.yaml``: what
    reads a finished run rebuilds its recipe from it instead of being given its ``--set`` settings again), run it."""
    from suite.config import save_run_recipe

    print(_opening_line(domain, recipe, how), flush=True)
    command = " ".join(["distill", *(shlex.quote(arg) for arg in args.argv)])
    save_run_recipe(recipe, recipe.output_dir, domain.name, command)
    with quiet_library_progress():
        domain.run(recipe, resume=args.resume)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from suite.domains import get_domain

    domain = get_domain(args.domain)
    recipe = _recipe_for(domain, args.profile, {}, args.set, args.output_dir, args.publish)
    return _start(domain, recipe, f"distill run {domain.name} --profile {args.profile}", args)


def cmd_recipe(args: argparse.Namespace) -> int:
    from suite.config import describe_fields
    from suite.domains import get_domain

    domain = get_domain(args.domain)
    recipe = _recipe_for(domain, args.profile, {}, args.set, None)
    print(f"recipe of '{domain.name}' (profile {args.profile}); change a key with --set KEY=VALUE")
    for key, type_name, value, help_text in describe_fields(recipe):
        print(f"  {key} ({type_name}) = {value!r}" + (f"\n      {help_text}" if help_text else ""))
    print(f"profiles: {', '.join(domain.profiles)}")
    return 0


@contextlib.contextmanager
def quiet_library_progress() -> Iterator[None]:
    """Silence transformers' and huggingface_hub's own loading bars and info logs inside a run: the run prints
    its own progress, and a wall of "Loading weights" bars hides it."""
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
        enable_progress_bars()


def cmd_train(args: argparse.Namespace) -> int:
    from suite.config import read_yaml
    from suite.domains import get_domain

    data = read_yaml(args.config)
    name = data.pop("domain", None)
    if not name:
        raise SuiteError(f"{args.config}: add a top-level 'domain:' key naming the recipe (e.g. domain: example)")
    domain = get_domain(str(name))
    profile = str(data.pop("profile", "full"))
    recipe = _recipe_for(domain, profile, data, args.set, args.output_dir, args.publish)
    return _start(domain, recipe, f"distill train {args.config}", args)


def cmd_data(args: argparse.Namespace) -> int:
    from suite.data import fetch_dataset, get_spec, list_datasets, verify_dataset

    if args.action == "list":
        for name in list_datasets():
            spec = get_spec(name)
            print(f"{name:<20} {spec.license:<40} {spec.description}")
        return 0
    if args.action == "select":
        return _data_select(args)
    if args.action == "distill":
        return _data_distill(args)
    names = args.names or list_datasets()
    failed = 0
    for name in names:
        if args.action == "fetch":
            print(f"{name}: {fetch_dataset(name)}")
            continue
        checks = verify_dataset(name)
        bad = [c for c in checks if not c.ok]
        failed += bool(bad)
        print(f"{name}: {len(checks) - len(bad)}/{len(checks)} files verified")
        for check in bad:
            print(f"  {check.status}: {check.path}")
    return 1 if failed else 0


def _data_select(args: argparse.Namespace) -> int:
    from suite.selection.files import select_file

    if len(args.names) != 2 or not args.column or not args.out:
        raise SuiteError("usage: distill data select METHOD FILE --column NAME --out DIR [--threshold T] [--budget B]")
    method, path = args.names
    params = {"threshold": args.threshold} if args.threshold is not None else {}
    select_file(method, path, args.column, args.out, budget=args.budget, **params)
    return 0


def _data_distill(args: argparse.Namespace) -> int:
    from suite.condense.files import distill_table_to_folder, distill_to_folder

    if len(args.names) != 1 or not args.out:
        raise SuiteError("usage: distill data distill METHOD --out DIR [--dataset digits] [--ipc K] [--seed S] "
                         "[--iterations N]; text: add --table FILE --column C --label-column L")  # fmt: skip
    settings = {"iterations": args.iterations} if args.iterations else {}
    if args.table:
        if not args.column or not args.label_column:
            raise SuiteError("distill data distill METHOD --table FILE needs --column (text) and --label-column")
        distill_table_to_folder(args.names[0], args.table, args.column, args.label_column, args.ipc, args.seed,
                                args.out, **settings)  # fmt: skip
        return 0
    distill_to_folder(args.names[0], args.dataset, args.ipc, args.seed, args.out, **settings)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from suite.hub import list_models
    from suite.students import list_students
    from suite.teachers import list_teachers

    print("pretrained models (offline short names):")
    for name, description in list_models().items():
        print(f"  {name:<22} {description}")
    print("students:")
    for name, description in list_students().items():
        print(f"  {name:<22} {description}")
    print("teacher backends:")
    for name in list_teachers():
        print(f"  {name}")
    print("domains:")
    from suite.domains import DOMAINS

    for name in DOMAINS.names():
        print(f"  {name:<22} {DOMAINS.describe(name)}")
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from suite.domains import get_domain

    domain = get_domain(args.domain)
    if not domain.app:
        raise SuiteError(f"domain '{args.domain}' has no app yet (apps arrive with the domain packs)")
    from suite.registry import Registry

    apps = Registry("app")
    apps.register(domain.name, domain.app)
    apps.get(domain.name)().launch(server_name=args.host, server_port=args.port)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from suite.export.saved import export_saved_text_student

    out = export_saved_text_student(
        args.model_dir,
        args.out_dir,
        int8=args.int8,
        fp16=args.fp16,
        eval_data=args.eval_data,
        max_metric_drop=args.max_metric_drop,
    )
    spec = json.loads((out / "spec.json").read_text())
    for variant, report in spec["parity"].items():
        drop = "" if report["metric_drop"] is None else f", metric drop {report['metric_drop']:+.4f}"
        print(
            f"{variant}: parity ok (max |diff| {report['max_abs_diff']:.2e} <= {report['tolerance']:g}, "
            f"argmax agreement {report['argmax_agreement']:.3f}{drop})"
        )
    print(f"wrote {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from suite.eval.exported import evaluate_exported_classifier

    pair_field = args.pair_field or None
    metrics = evaluate_exported_classifier(
        args.export_dir,
        args.data,
        args.text_field,
        pair_field,
        args.label_field,
        variant=args.variant,
        rating_range=tuple(args.rating_range) if args.rating_range else None,
    )
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from suite.bench.__main__ import run_from_args

    with quiet_library_progress():  # rebuilding the PyTorch students would print a loading bar each
        return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description="Distill large teachers into edge students.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a domain end to end (default: the education pack)")
    run.add_argument("domain", nargs="?", default="education", help="domain name (see `distill models list`)")
    run.add_argument("--profile", default="quick", help="quick | full")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    run.add_argument("--output-dir", help="where runs, teacher outputs and results go")
    run.add_argument("--resume", action="store_true", help="continue interrupted training from its checkpoints")
    run.add_argument("--publish", action="store_true", help="write the report to docs/results, the card to models/")
    run.set_defaults(func=cmd_run)

    recipe = sub.add_parser("recipe", help="list a domain's recipe keys: type, value in a profile, help")
    recipe.add_argument("domain", help="domain name (see `distill models list`)")
    recipe.add_argument("--profile", default="full", help="show the values of this profile")
    recipe.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    recipe.set_defaults(func=cmd_recipe)

    train = sub.add_parser("train", help="run a recipe from a YAML file (top-level key 'domain' names it)")
    train.add_argument("config", help="YAML recipe")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    train.add_argument("--output-dir", help="where runs, teacher outputs and results go")
    train.add_argument("--resume", action="store_true", help="continue interrupted training from its checkpoints")
    train.add_argument("--publish", action="store_true", help="write the report to docs/results, the card to models/")
    train.set_defaults(func=cmd_train)

    data = sub.add_parser(
        "data", help="list, fetch or verify registered datasets; select rows of a table; distil images or a table"
    )
    data.add_argument("action", choices=["list", "fetch", "verify", "select", "distill"])
    data.add_argument("names", nargs="*", help="dataset names (default: all); select: METHOD FILE; distill: METHOD")
    data.add_argument("--column", help="select: the column whose text is compared; distill --table: the text")
    data.add_argument("--out", help="select: folder for selected.jsonl and selection.json; distill: output folder")
    data.add_argument("--threshold", type=float, default=None,
                      help="select: minhash Jaccard of word trigrams (0.8), semdedup cosine (0.95)")  # fmt: skip
    data.add_argument("--budget", type=float, default=None, help="select kcenter: share (<= 1) or count to keep")
    data.add_argument("--dataset", default="digits", help="distill: the image set (digits)")
    data.add_argument("--table", help="distill text: a labelled CSV / TSV / JSONL (methods random, dm, gm)")
    data.add_argument("--label-column", help="distill text: the column with the class")
    data.add_argument("--ipc", type=int, default=1, help="distill: images per class")
    data.add_argument("--seed", type=int, default=0, help="distill: seed")
    data.add_argument("--iterations", type=int, default=0, help="distill: updates of the set (0: the default)")
    data.set_defaults(func=cmd_data)

    models = sub.add_parser("models", help="list offline models, students, teacher backends and domains")
    models.add_argument("action", choices=["list"])
    models.set_defaults(func=cmd_models)

    app = sub.add_parser("app", help="launch a domain's Gradio app")
    app.add_argument("domain")
    app.add_argument("--host", default="127.0.0.1")
    app.add_argument("--port", type=int, default=7860)
    app.set_defaults(func=cmd_app)

    export = sub.add_parser("export", help="export a saved student to ONNX with a mandatory parity check")
    export.add_argument("model_dir", help="a saved student (student.json + student.safetensors + tokenizer/)")
    export.add_argument("out_dir", help="new or empty output directory")
    export.add_argument("--int8", action="store_true", help="also write a dynamic int8 variant (parity-checked)")
    export.add_argument("--fp16", action="store_true", help="also write an fp16 variant (parity-checked)")
    export.add_argument("--eval-data", help="labelled JSONL (text, text_pair, label): accuracy + variant metric check")
    export.add_argument(
        "--max-metric-drop", type=float, default=0.01, help="largest accuracy drop an int8/fp16 variant may have"
    )
    export.set_defaults(func=cmd_export)

    evaluate = sub.add_parser("eval", help="evaluate an exported text classifier on a labelled JSONL file")
    evaluate.add_argument("export_dir", help="directory written by distill export")
    evaluate.add_argument("data", help="JSONL with text, text_pair and label fields")
    evaluate.add_argument("--text-field", default="text")
    evaluate.add_argument("--pair-field", default="text_pair", help="empty string for single-text inputs")
    evaluate.add_argument("--label-field", default="label")
    evaluate.add_argument("--variant", default="fp32", choices=["fp32", "int8", "fp16"])
    evaluate.add_argument(
        "--rating-range",
        nargs=2,
        type=int,
        metavar=("LOW", "HIGH"),
        help="class indices of an ordinal scale: adds quadratic weighted kappa (off for nominal classes)",
    )
    evaluate.set_defaults(func=cmd_eval)

    from suite.bench.__main__ import add_arguments

    bench = add_arguments(sub.add_parser("bench", help="latency of exported students (onnxruntime vs PyTorch)"))
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what the run records as its command
    try:
        return args.func(args)
    except SuiteError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        message = "interrupted; checkpoints and stored teacher outputs are kept: rerun with --resume to continue"
        print(message, file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
