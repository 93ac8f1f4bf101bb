"""The ``rilib`` command line (also ``python -m rilib``).

    rilib zoo list [--profile P]
    rilib zoo train [NAMES ...] [--profile P] [--retrain]
    rilib zoo verify [--profile P]
    rilib zoo pack [--profile P] [--output FILE]
    rilib zoo unpack FILE|URL
    rilib book run [NOTEBOOKS ...] [--profile P] [--force] [--log-output]
    rilib book build [--profile P] [--repository OWNER/NAME]
    rilib book publish DEST [--repository OWNER/NAME]
    rilib book timings LOG [--json FILE] [--record-chapters [--note TEXT]] [--without NAME ...]
    rilib claims [--profile P] [--chapter C] [--json FILE] [--strict]
    rilib assignments build [--profile P] [--chapters C ...] [--out DIR] [--html]
    rilib assignments check NOTEBOOK ... [--profile P] [--json FILE] [--record]
    rilib assignments list
    rilib claims --compare A.json B.json
    rilib filters stats CHECKPOINT --arch NAME
    rilib --version

An error prints one clear message without a traceback. The exit status is 2 for a usage error (an unknown
name, a malformed argument) and 1 for a runtime failure (missing data, a corrupt checkpoint or pack, a failing
chapter, a failed claim under --strict).

The command line is the entry point above every layer of the package: it imports ``rilib.chapters`` (which
registers the book's models and claims) and the book's runner and ledger, and nothing imports it.
"""

from __future__ import annotations

import argparse
import sys

from .errors import RilibError, UsageError

DEFAULT_PROFILE = "cpu"


def _add_profile(p: argparse.ArgumentParser) -> None:
    from .profiles import list_profiles
    p.add_argument("--profile", default=DEFAULT_PROFILE,
                   help=f"size of every run: {', '.join(list_profiles())} (default: {DEFAULT_PROFILE})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rilib",
        description="Train and cache the book's models, run its chapters, build it, and check the papers' claims.",
        epilog="Environment: RILIB_CACHE (model zoo), RILIB_DATA_DIR (torchvision data root), "
               "RILIB_DOWNLOAD=1 (allow downloads of datasets and packed zoos), RILIB_TRAIN=0 (never train: a "
               "missing model is an error), RILIB_PRECISION=fp32|bf16|auto (the precision of training and of "
               "the attacks' gradient steps; auto: bf16 where the CPU has native bfloat16), "
               "RILIB_REPOSITORY=owner/name (where the book is published).")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"rilib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    zoo_p = sub.add_parser("zoo", help="list or train the cached models of a profile",
                           description="The model zoo: each model is a spec, trained once and cached.")
    zoo_sub = zoo_p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = zoo_sub.add_parser("list", help="list the models of a profile and whether they are trained")
    _add_profile(lst)
    ver = zoo_sub.add_parser("verify", help="check every model of a profile against its recorded sha256",
                             description="Check each model's metrics.json, its checkpoint's sha256 and its cached "
                                         "evaluations, the profile's cached chapter results, and the executed "
                                         "chapters in book/; print a table. Exit status 1 if a model or an executed "
                                         "chapter is broken (a corrupt chapter result heals itself: it is "
                                         "recomputed on its next use).")
    _add_profile(ver)
    tr = zoo_sub.add_parser("train", help="train the named models (default: all) unless cached")
    tr.add_argument("names", nargs="*", metavar="NAME", help="zoo names (see `rilib zoo list`)")
    tr.add_argument("--retrain", action="store_true", help="delete the cached models first and train again")
    tr.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                    help="models trained at once, each in its own process with cores/N threads (default: one per "
                         "CPU core on a CPU, 1 on a GPU); 1 trains one after the other with a progress bar")
    _add_profile(tr)
    pk = zoo_sub.add_parser("pack", help="write a profile's trained models to one tarball with a manifest",
                            description="Write every trained model of a profile (weights, metrics, spec) and a "
                                        "manifest of their sha256 to rilib-zoo-<profile>.tar.gz, so that a zoo "
                                        "trained once travels to Binder, Colab or a laptop.")
    pk.add_argument("--output", "-o", default=None, metavar="FILE",
                    help="the tarball to write, or a folder for it (default: ./rilib-zoo-<profile>.tar.gz)")
    _add_profile(pk)
    up = zoo_sub.add_parser("unpack", help="check a packed zoo against its manifest, then add it to the zoo",
                            description="Check every file of a packed zoo against its manifest (sha256, size, "
                                        "paths that stay in the zoo, no extra files) before anything is written; "
                                        "then add its models to the zoo (RILIB_CACHE). A URL is fetched only with "
                                        "RILIB_DOWNLOAD=1.")
    up.add_argument("source", metavar="FILE|URL", help="a tarball written by `rilib zoo pack`, or its http(s) URL")

    book_p = sub.add_parser("book", help="execute the chapters (papermill) and build the HTML book",
                            description="Execute chapters with papermill and build the book with Jupyter Book.")
    book_sub = book_p.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = book_sub.add_parser("run", help="execute chapters into book/ under a profile")
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="chapter names (default: all)")
    run.add_argument("--root", default=None, help="project folder (default: this checkout)")
    run.add_argument("--force", action="store_true",
                     help="execute chapters even when their executed notebook is up to date")
    run.add_argument("--log-output", action="store_true",
                     help="stream every cell's output while it runs (default: a progress bar over the cells)")
    run.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                     help="chapters executed at once, each in its own process with cores/N threads and its output "
                          "in book/.NAME.log (default: one per CPU core on a CPU, 1 on a GPU); the longest chapters "
                          "recorded in book/chapter-timings.json start first, the synthesis page after the others")
    _add_profile(run)
    pre = book_sub.add_parser("precompute", help="fill the caches a chapter names in its front matter (`rilib: "
                                                 "precompute: module:function`), as `book run` does beside the "
                                                 "other chapters",
                              description="Run a chapter's precomputation: the part of its measurements that `rilib "
                                          "book run` computes in a process of its own while the other chapters run, "
                                          "so that a long chapter spreads over two cores. The chapter loads what it "
                                          "finds cached and waits for a part still being computed.")
    pre.add_argument("notebook", metavar="NOTEBOOK", help="a chapter name, e.g. 03_saliency")
    pre.add_argument("--root", default=None, help="project folder (default: this checkout)")
    _add_profile(pre)
    repo_help = ("where the book is published, owner/name on GitHub (default: RILIB_REPOSITORY, else the "
                 "placeholder in _config.yml); sets the launch links and html.baseurl")
    bld = book_sub.add_parser("build", help="build the HTML book into _build/html (the chapters executed so far)")
    bld.add_argument("--root", default=None, help="project folder (default: this checkout)")
    bld.add_argument("--profile", default=None,
                     help="also write the claims ledger of this profile to _build/html/ledger.json "
                          "(`make book` passes its PROFILE)")
    bld.add_argument("--repository", default=None, metavar="OWNER/NAME", help=repo_help)
    pub = book_sub.add_parser("publish", help="write the tree of the published branch (sources + executed notebooks)",
                              description="Write the tree that the publish workflow pushes to the `published` "
                                          "branch, which the launch buttons open: the tracked files, the executed "
                                          "chapters in book/ (with their bootstrap cell) and the resolved "
                                          "_config.yml.")
    pub.add_argument("dest", metavar="DEST", help="an empty or disposable folder (its contents are replaced)")
    pub.add_argument("--root", default=None, help="project folder (default: this checkout)")
    pub.add_argument("--repository", default=None, metavar="OWNER/NAME", help=repo_help)
    tim = book_sub.add_parser("timings", help="summarise a timing log (RILIB_TIMINGS) and write it as JSON",
                              description="Read the JSON-lines log that a run wrote while RILIB_TIMINGS named it "
                                          "(`make book` does), print where the time went, and write the report.")
    tim.add_argument("log", metavar="LOG", help="the log, e.g. _build/timings.jsonl")
    tim.add_argument("--json", metavar="FILE", default=None, help="write the report here (e.g. _build/timings.json)")
    tim.add_argument("--record-chapters", action="store_true",
                     help="keep each executed chapter's run time for the instructors' page (book/chapter-timings.json)")
    tim.add_argument("--note", default="", help="with --record-chapters: how the run was made (machine, load, cache)")
    tim.add_argument("--without", nargs="+", default=(), metavar="NAME",
                     help="also replay the run's training and chapters without the jobs whose names contain any NAME "
                          "(e.g. `canvas 06_perceptual_ball`): what the run would have taken without them, from its "
                          "own job times")

    fil = sub.add_parser("filters", help="3×3 filter statistics of a checkpoint (Gavrikov & Keuper 2022)",
                         description="Filter statistics of Gavrikov & Keuper (2022) for a local checkpoint.")
    fil_sub = fil.add_subparsers(dest="action", metavar="ACTION", required=True)
    st = fil_sub.add_parser("stats", help="print per-layer sparsity, variance entropy and orthogonality",
                            description="Load a state_dict (weights only) into an architecture and print the "
                                        "per-layer and per-depth filter statistics.")
    st.add_argument("checkpoint", metavar="CHECKPOINT", help="a file saved with torch.save(model.state_dict())")
    st.add_argument("--arch", required=True,
                    help="rilib architecture (small-cnn, tiny-cnn, preact-resnet18) or torchvision model name")
    st.add_argument("--in-shape", default=None, metavar="C,H,W",
                    help="input shape of a rilib architecture (default: inferred, 28×28 or 32×32)")
    st.add_argument("--num-classes", type=int, default=None, help="default: inferred from the last layer")

    cl = sub.add_parser("claims", help="measure the papers' claims and print the ledger",
                        description="Measure every registered claim on the zoo (training models on first "
                                    "use) and print pass/fail with the measured values.")
    _add_profile(cl)
    cl.add_argument("--chapter", default=None, help="only this chapter's claims (e.g. 1)")
    cl.add_argument("--json", metavar="FILE", default=None,
                    help="also write the ledger as JSON (schema rilib.ledger version 1, see rilib.book.ledger)")
    cl.add_argument("--strict", action="store_true", help="exit with status 1 if any claim fails")
    cl.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None,
                    help="measure nothing: print the claims whose outcome or values moved between two JSON "
                         "ledgers; exit status 1 if any did")

    asg = sub.add_parser("assignments", help="the classroom edition: student notebooks, and grading them",
                         description="Build student and instructor notebooks from the chapters' sources (the "
                                     "students' without solutions), and grade a notebook by executing it.")
    asg_sub = asg.add_subparsers(dest="action", metavar="ACTION", required=True)
    ab = asg_sub.add_parser("build", help="write dist/student and dist/instructor notebooks (and the student HTML)",
                            description="Write dist/student/<chapter>.ipynb (solutions stripped, stubs in place, "
                                        "no outputs, a bootstrap cell for Colab and Binder) and "
                                        "dist/instructor/<chapter>.ipynb (with solutions) for each chapter with "
                                        "exercises. --html also builds the book with every solution hidden into "
                                        "dist/student-html from the chapters executed in book/.")
    _add_profile(ab)
    ab.add_argument("--chapters", nargs="+", default=None, metavar="CHAPTER",
                    help="chapter names, e.g. 01_standard_and_robust (default: every chapter with exercises)")
    ab.add_argument("--out", default=None, metavar="DIR", help="output folder (default: dist/ in the checkout)")
    ab.add_argument("--html", action="store_true",
                    help="also build the student HTML edition (run `rilib book run --profile P` first)")
    ab.add_argument("--root", default=None, help="project folder (default: this checkout)")
    ab.add_argument("--repository", default=None, metavar="OWNER/NAME", help=repo_help)
    ac = asg_sub.add_parser("check", help="execute notebooks and report each exercise: passed, failed, not attempted",
                            description="Execute each notebook with papermill under a profile and read back every "
                                        "check cell. Exit status 1 if any exercise failed.")
    ac.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="student or instructor notebooks (.ipynb)")
    ac.add_argument("--profile", default=None,
                    help="profile to execute under (default: the one the notebook was built for)")
    ac.add_argument("--json", metavar="FILE", default=None, help="also write the reports as JSON")
    ac.add_argument("--executed", metavar="DIR", default=None, help="keep the executed notebooks in DIR")
    ac.add_argument("--record", action="store_true",
                    help="keep the measured run times for the instructors' page (book/classroom-timings.json)")
    ac.add_argument("--note", default="", help="with --record: how the times were measured (the page prints it)")
    asg_sub.add_parser("list", help="list the exercises of every chapter, with difficulty and kind")
    return parser


def _zoo_list(profile: str) -> None:
    from . import zoo
    specs = zoo.zoo_specs(profile)
    width = max((len(n) for n in specs), default=4)
    print(f"Model zoo, profile {profile} (cache: {zoo.paths.zoo_dir()})")
    for name, spec in specs.items():
        status = "trained" if zoo.is_trained(spec) else "not trained"
        if status == "trained":
            info = zoo.metrics(spec)
            status += f", clean acc {info['clean_acc']:.3f}, on {zoo.describe_hardware(info.get('hardware'))}"
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.params)
        teacher = f" from teacher {spec.teacher.key()}" if spec.teacher is not None else ""
        print(f"  {name:<{width}}  {spec.key()}  {spec.dataset}/{spec.arch}/{spec.objective}"
              f"({params}){teacher} {spec.epochs} epochs, {spec.optimizer_label()}, seed {spec.seed}  [{status}]")


def _zoo_train(names: list[str], profile: str, retrain: bool, jobs: int | None) -> None:
    from . import zoo
    specs = {n: zoo.resolve(n, profile) for n in names} if names else zoo.zoo_specs(profile)
    done = []

    def report(name, spec, cached, seconds):  # zoo.train verifies a cached model's checkpoint before this
        done.append(name)
        how = "cached" if cached else f"trained in {seconds:.0f} s"
        print(f"{name}: {how}, clean acc {zoo.metrics(spec)['clean_acc']:.3f}  [{len(done)}/{len(specs)}]  "
              f"({spec.folder()})", flush=True)

    zoo.train_many(specs, jobs=jobs, retrain=retrain, report=report)


def _timings(log: str, out: str | None, record: bool = False, note: str = "", without=()) -> None:
    import json
    from pathlib import Path

    from . import paths, timing
    if not Path(log).is_file():
        raise RilibError(f"No timing log at {log}. Runs write one where RILIB_TIMINGS points "
                         f"(`make book` sets it to _build/timings.jsonl).")
    rep = timing.report(Path(log))
    print(timing.format_report(rep))
    if without:
        try:
            print(timing.format_replay(rep, tuple(without)))
        except ValueError as err:
            raise RilibError(str(err)) from None
    if out:
        paths.atomic_write_text(Path(out), json.dumps(rep, indent=2))
        print(f"Wrote {out}")
    if record:
        from .book import assignments
        print(f"Wrote {assignments.record_chapter_timings(rep, note=note)}")


def _zoo_verify(profile: str) -> int:
    from . import paths, zoo
    specs = zoo.zoo_specs(profile)
    width = max((len(n) for n in specs), default=4)
    print(f"Model zoo, profile {profile} (cache: {zoo.paths.zoo_dir()})")
    problems = 0
    for name, spec in specs.items():
        status = zoo.check(spec)
        problems += status["problem"]
        print(f"  {name:<{width}}  {spec.key()}  model: {status['model']:<11}  evaluations: {status['evaluations']}")
        if status["detail"]:
            print(f"  {'':<{width}}  {status['detail']}")
    results = paths.check_results(profile)
    print(f"\nChapter results, profile {profile} (derived: one that cannot be read is set aside and recomputed)")
    for r in results:
        print(f"  {r['file']:<56}  {r['state']:<9}  {r['bytes'] / 1e6:8.2f} MB")
    if not results:
        print("  none cached")
    from .book import runner
    try:
        executed = runner.check_executed(profile)
    except RilibError:  # not in a checkout of the book: there are no executed chapters to check
        executed = []
    broken = [e["chapter"] for e in executed if e["state"] == "unreadable"]
    if executed:
        print("\nExecuted chapters (book/)")
        for e in executed:
            ran = f" ({e['profile']})" if e["state"] == "other profile" else ""
            print(f"  {e['chapter']:<28}  {e['state']}{ran}")
    if broken:
        print(f"  {len(broken)} cannot be read and are left out of the build: `rilib book run {' '.join(broken)} "
              f"--force --profile {profile}` executes them again.")
    problems += len(broken)
    print(f"{problems} problem(s)." if problems else "Every trained model matches its recorded sha256; every executed "
          "chapter can be read.")
    return 1 if problems else 0


def _filters_stats(checkpoint: str, arch: str, in_shape: str | None, num_classes: int | None) -> None:
    import pandas as pd

    from .lenses import filters
    shape = None
    if in_shape:
        try:
            shape = tuple(int(v) for v in in_shape.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3:
            raise UsageError(f"--in-shape must be C,H,W (e.g. 3,32,32), not {in_shape!r}.")
    model = filters.load_state_dict_as(checkpoint, arch, shape, num_classes)
    stats = filters.layer_stats(model)
    with pd.option_context("display.max_rows", None, "display.width", 160, "display.precision", 3):
        print(f"3×3 filter statistics of {checkpoint} ({arch}); sparsity threshold max|W|/100\n")
        print(stats.drop(columns=["norm_depth"]).to_string(index=False))
        print("\nBy depth (first layer, then normalised-depth deciles; weighted as Gavrikov & Keuper 2022):\n")
        print(filters.by_depth(stats).to_string())


def _compare_ledgers(a: str, b: str) -> int:
    from .book import ledger
    first, second = ledger.read_json(a), ledger.read_json(b)
    lines = ledger.compare(first, second)
    print(f"{a} (profile {first.get('profile')}) -> {b} (profile {second.get('profile')}): "
          f"{len(lines) or 'no'} claim{'s' if len(lines) != 1 else ''} moved")
    for line in lines:
        print(f"  {line}")
    note = ledger.hardware_note(first, second)
    if note:
        print(note)
    return 1 if lines else 0


def _assignments(args) -> int:
    from pathlib import Path

    from .book import assignments, exercises
    if args.action == "list":
        for e in exercises.list_exercises():
            print(f"chapter {e.chapter}  {e.label:<22} {e.kind:<8} {e.difficulty:<6} ~{e.minutes:>2} min  {e.title}")
        return 0
    if args.action == "build":
        written = assignments.build(args.profile, args.chapters, args.root, args.out, html=args.html,
                                    repository=args.repository)
        for edition, files in written.items():
            print(f"{edition}: {len(files)} file(s) in {files[0].parent if files else '-'}")
        return 0
    reports = []
    for nb in args.notebooks:
        out = Path(args.executed) / Path(nb).name if args.executed else None
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
        print(f"[rilib] checking {nb} ...", flush=True)
        reports.append(assignments.check(nb, args.profile, out, progress=sys.stderr.isatty()))
        print(reports[-1].table(), flush=True)
    if args.json:
        assignments.write_json(reports, args.json)
        print(f"Wrote {args.json}")
    if args.record:
        by_edition: dict = {}
        for r in reports:
            by_edition.setdefault(r.edition or "student", []).append(r)
        print(f"Wrote {assignments.record_timings(by_edition, note=args.note)}")
    return 1 if any(r.failed for r in reports) else 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``), raised where Ctrl-C would raise KeyboardInterrupt, so that it stops a run the same
    way: training processes at their last epoch checkpoint, chapters with their partial notebook kept."""


def _raise_terminated(signum, frame):
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    from . import stopping

    parser = build_parser()
    args = parser.parse_args(argv)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main else None
    if in_main:  # a chapter of a parallel `rilib book run` stops when that run is gone, even after kill -9
        stopping.stop_with_parent_from_env(then="Its partial work is kept as after Ctrl-C.", grace=30.0)
    try:
        return _main(args)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _main(args: argparse.Namespace) -> int:
    try:
        from . import chapters, profiles  # noqa: F401  (chapters: register the book's models and claims)
        if getattr(args, "profile", None) is not None:
            profiles.get_profile(args.profile)
        if args.command == "zoo" and args.action == "list":
            _zoo_list(args.profile)
        elif args.command == "zoo" and args.action == "verify":
            return _zoo_verify(args.profile)
        elif args.command == "zoo" and args.action == "pack":
            from . import pack
            out = pack.pack(args.profile, args.output)
            print(f"Wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
        elif args.command == "zoo" and args.action == "unpack":
            from . import pack
            print(pack.unpack(args.source).summary())
        elif args.command == "zoo":
            _zoo_train(args.names, args.profile, args.retrain, args.jobs)
        elif args.command == "book" and args.action == "run":
            from .book import runner
            runner.run(args.notebooks, args.profile, args.root, force=args.force, log_output=args.log_output,
                       jobs=args.jobs)
        elif args.command == "book" and args.action == "precompute":
            from .book import runner
            runner.precompute(args.notebook, args.profile, args.root)
        elif args.command == "book" and args.action == "publish":
            from .book import publish, runner
            root = runner.project(args.root)
            written = publish.publish_tree(root, args.dest, cfg=publish.book_config(root, args.repository))
            print(f"Wrote the published tree to {args.dest}: {len(written)} files")
        elif args.command == "book" and args.action == "timings":
            _timings(args.log, args.json, args.record_chapters, args.note, args.without)
        elif args.command == "book":
            from .book import runner
            index = runner.build(args.root, profile=args.profile, repository=args.repository)
            print(f"Built {index}" + (f" and {index.parent / 'ledger.json'}" if args.profile else ""))
        elif args.command == "assignments":
            return _assignments(args)
        elif args.command == "filters":
            _filters_stats(args.checkpoint, args.arch, args.in_shape, args.num_classes)
        elif args.command == "claims":
            from .book import ledger
            if args.compare:
                return _compare_ledgers(*args.compare)
            results = ledger.run(args.profile, args.chapter)
            print(ledger.format_ledger(results))
            if args.json:
                ledger.write_json(results, args.json)
                print(f"\nWrote {args.json}")
            failed = [r for r in results if not r.passed]
            if args.strict and failed:
                print(f"rilib: {len(failed)} of {len(results)} claims failed (--strict).", file=sys.stderr)
                return 1
    except UsageError as exc:
        print(f"rilib: error: {exc}", file=sys.stderr)
        return 2
    except RilibError as exc:
        print(f"rilib: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        print(f"rilib: {how}{_kept_after_interrupt(args)}", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    return 0


def _kept_after_interrupt(args: argparse.Namespace) -> str:
    """The end of an interrupted command's last message: what it keeps, for the commands that train models or
    execute chapters (the others have no partial work to resume)."""
    trains = "a model being trained resumes from its last epoch checkpoint next time"
    if args.command == "book" and args.action == "run":
        return (f"; a chapter that did not complete keeps its partial notebook as book/.<chapter>.failed.ipynb "
                f"(its last complete run, if any, stays in book/), and {trains}.")
    if (args.command, getattr(args, "action", None)) in {("claims", None), ("zoo", "train"), ("book", "precompute")}:
        return f"; {trains}."
    return "."


if __name__ == "__main__":
    sys.exit(main())
