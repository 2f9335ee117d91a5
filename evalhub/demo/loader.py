"""The demo project, loaded by `make demo` (`manage.py load_demo`). Idempotent: a second run changes nothing.

The loader is a list of named steps run in order. Each step finds what it made on an earlier run by a natural key
(a username, a project or dataset name) and only creates what is missing. Later stages of the loop add their own
steps (train an adapter, generate outputs, reviews, arena votes) with `register_step`, in a module
`evalhub/<app>/demo.py` that the loader imports; they find the objects made here through `DemoContext`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module, resources
from pathlib import Path
from typing import Any, TextIO

from django.apps import apps
from django.contrib.auth import get_user_model

PROJECT_NAME = "Product descriptions (demo)"
DATASET_NAME = "Products"
DEMO_PASSWORD = "evalhub-demo"
QUEUE_NAME = "Tone check"


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str  # a project role, or "admin" for the superuser
    what: str


USERS: tuple[DemoUser, ...] = (
    DemoUser("lead", "lead", "configures the project, imports data, launches training, sees model names"),
    DemoUser("reviewer", "reviewer", "adjudicates disagreements between annotators"),
    DemoUser("annotator1", "annotator", "curates data and rates outputs, blind to which model wrote them"),
    DemoUser("annotator2", "annotator", "a second annotator, for agreement"),
    DemoUser("admin", "admin", "superuser: Django admin at /admin/"),
)

# One paragraph or bullet per line: pages show these with their line breaks.
_TASK_LINES = (
    ("Write the description that appears on the product's page in our online shop, from the brief: product name, "
     "category, audience, key facts and tone."),
    "- 60-90 words, in British English, metric units.",
    "- Use only the facts in the brief. Never invent a claim, a price, a warranty or a certification.",
    "- Open with what the product does for the audience named in the brief; name the main material.",
    ("- Match the tone: playful (light, a wink, never silly), premium (calm, precise, unhurried) or practical "
     "(plain, useful, to the point)."),
    ('- No stock phrases ("elevate your", "look no further", "game-changer", "must-have"), no emojis, at most one '
     "exclamation mark. End on a concrete detail or a soft call to action."),
)
TASK_INSTRUCTIONS = "\n".join(_TASK_LINES)

_QUEUE_LINES = (
    "Check that the reference is a description a copywriter would publish for this brief.",
    ("Accept (a) if it is good as it is. Fix (e) if a small edit makes it right: a fact that is not in the brief, a "
     "wrong number, a missing material, a stock phrase. Reject (r) if it needs rewriting."),
    "Pick the tone it is actually written in (1 playful, 2 premium, 3 practical) when it differs from the brief.",
)
QUEUE_INSTRUCTIONS = "\n".join(_QUEUE_LINES)


@dataclass
class DemoContext:
    """What steps share: the output stream, the users by username, the project, and named objects (`state`)."""

    stdout: TextIO
    users: dict[str, Any] = field(default_factory=dict)
    project: Any = None
    state: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str) -> None:
        self.stdout.write(line + "\n")


StepFunc = Callable[[DemoContext], str]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFunc  # returns a one-line summary of what it did (or found)


STEPS: list[Step] = []


def register_step(name: str, run: StepFunc, *, after: str | None = None) -> None:
    """Add a step (at the end, or right after the step called `after`). Registering a name twice keeps the first,
    so importing a module again does not run its step twice."""
    if any(s.name == name for s in STEPS):
        return
    step = Step(name, run)
    if after is None:
        STEPS.append(step)
        return
    names = [s.name for s in STEPS]
    if after not in names:
        raise ValueError(f"no demo step called {after!r} (steps: {', '.join(names)})")
    STEPS.insert(names.index(after) + 1, step)


def demo_step(name: str, *, after: str | None = None) -> Callable[[StepFunc], StepFunc]:
    def decorator(run: StepFunc) -> StepFunc:
        register_step(name, run, after=after)
        return run

    return decorator


def products_path() -> Path:
    return Path(str(resources.files("evalhub.demo").joinpath("data/products.jsonl")))


# --------------------------------------------------------------------------------------------------------------------
# Steps of the data stage


@demo_step("users")
def _users(ctx: DemoContext) -> str:
    User = get_user_model()
    created = []
    for spec in USERS:
        user = User.objects.filter(username=spec.username).first()
        if user is None:
            if spec.role == "admin":
                user = User.objects.create_superuser(spec.username, email="", password=DEMO_PASSWORD)
            else:
                user = User.objects.create_user(spec.username, password=DEMO_PASSWORD)
            created.append(spec.username)
        ctx.users[spec.username] = user
    return f"created {', '.join(created)}" if created else "all there"


@demo_step("project")
def _project(ctx: DemoContext) -> str:
    from evalhub.projects.models import Membership, Project

    lead = ctx.users["lead"]
    project = Project.objects.filter(name=PROJECT_NAME).order_by("pk").first()
    made = project is None
    if project is None:
        project = Project.objects.create(
            name=PROJECT_NAME, created_by=lead, task_instructions=TASK_INSTRUCTIONS,
            description="Fine-tune a small model to write product descriptions for an online shop, and prove it "
                        "writes them better than the base model.",
        )
    added = 0
    for spec in USERS:
        if spec.role == "admin":
            continue
        _, new = Membership.objects.get_or_create(project=project, user=ctx.users[spec.username],
                                                  defaults={"role": spec.role})
        added += new
    ctx.project = project
    return ("created" if made else "found") + f" “{project.name}”" + (f", {added} members added" if added else "")


@demo_step("dataset: import products.jsonl")
def _dataset(ctx: DemoContext) -> str:
    from evalhub.datasets import services
    from evalhub.datasets.ingest import ColumnMapping
    from evalhub.datasets.models import Dataset, VersionSource

    dataset = Dataset.objects.filter(project=ctx.project, name=DATASET_NAME).first()
    first = dataset.versions.order_by("number").first() if dataset else None
    if first is not None:
        ctx.state["version"] = first
        return f"found {first} ({first.row_count} rows)"
    path = products_path()
    mapping = ColumnMapping(prompt="prompt", reference="reference", label="tone", id="id",
                            attributes=["category", "audience", "material"])
    version = services.dataset_import(
        project=ctx.project, user=ctx.users["lead"], path=path, display_name=path.name, mapping=mapping,
        dataset=dataset, dataset_name=None if dataset else DATASET_NAME, source=VersionSource.DEMO,
        description="Hand-written product briefs and reference descriptions (see evalhub/demo/data/README.md).",
        note="Demo data: 184 fictional products with hand-written references; label = tone.",
    )
    ctx.state["version"] = version
    return f"imported {version} ({version.row_count} rows)"


@demo_step("dataset: split train/validation/eval")
def _split(ctx: DemoContext) -> str:
    from evalhub.datasets import services
    from evalhub.datasets.models import VersionSource

    version = ctx.state["version"]
    children = list(version.children.filter(source=VersionSource.SPLIT).order_by("number"))
    made = not children
    if made:
        children = services.version_split(version=version, user=ctx.users["lead"],
                                          fractions={"train": 0.8, "validation": 0.1, "eval": 0.1}, seed=0,
                                          stratify_by="category")
    for child in children:
        ctx.state[f"split:{child.split_name}"] = child
    return ("made " if made else "found ") + ", ".join(f"{c.split_name} v{c.number} ({c.row_count})"
                                                       for c in children)


@demo_step("dataset: quality reports")
def _quality(ctx: DemoContext) -> str:
    from evalhub.datasets import services
    from evalhub.datasets.models import QualityReport

    wanted = [(ctx.state["version"], None)]
    if "split:train" in ctx.state and "split:eval" in ctx.state:
        wanted.append((ctx.state["split:train"], ctx.state["split:eval"]))
    done = []
    for version, compare_to in wanted:
        existing = QualityReport.objects.filter(version=version, compare_to=compare_to,
                                                job__status="succeeded").first()
        if existing is None:
            existing = services.quality_report_request(version=version, user=ctx.users["lead"],
                                                       compare_to=compare_to, run_now=True)
            done.append(existing)
        ctx.state[f"report:{version.pk}"] = existing
    if not done:
        return "all there"
    return "; ".join(f"{r.version}: {len(r.report.get('findings', []))} finding(s)" for r in done)


@demo_step("dataset: curation queue")
def _queue(ctx: DemoContext) -> str:
    from evalhub.datasets import services
    from evalhub.datasets.models import CurationQueue

    version = ctx.state.get("split:train") or ctx.state["version"]
    queue = CurationQueue.objects.filter(version__dataset__project=ctx.project, name=QUEUE_NAME).first()
    if queue is None:
        queue = services.curation_queue_create(
            version=version, name=QUEUE_NAME, created_by=ctx.users["lead"], instructions=QUEUE_INSTRUCTIONS,
            label_choices=["playful", "premium", "practical"], sample_size=12, seed=0,
        )
        ctx.state["queue"] = queue
        return f"created “{queue.name}” over {version} with {queue.items.count()} examples"
    ctx.state["queue"] = queue
    return f"found “{queue.name}”"


# --------------------------------------------------------------------------------------------------------------------


def _load_app_steps() -> None:
    """Import `evalhub.<app>.demo` of every EvalHub app that has one, so their steps are registered."""
    for config in apps.get_app_configs():
        if not config.name.startswith("evalhub.") or config.name == "evalhub.demo":
            continue
        try:
            import_module(f"{config.name}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.demo":
                raise


def load_demo(stdout: TextIO, *, data_only: bool = False) -> None:
    """Run every step in order; each says what it made or found. `data_only` runs just this module's steps (users,
    project and the data stage), without the steps later stages add (training, generation...)."""
    if not data_only:
        _load_app_steps()
    ctx = DemoContext(stdout=stdout)
    steps = [s for s in STEPS if not data_only or getattr(s.run, "__module__", None) == __name__]
    # No transaction around a step: services are atomic themselves, and a step that runs a job in-process must let
    # the job mechanism commit its own progress. A run cut short is finished by running the loader again.
    for step in steps:
        summary = step.run(ctx)
        ctx.say(f"  {step.name}: {summary}")
    if ctx.project is not None:
        ctx.say(f"Demo project “{ctx.project.name}” is ready (id {ctx.project.pk}).")


def login_lines(url: str | None = None) -> list[str]:
    """The lines `manage.py demo_logins` prints."""
    lines = []
    if url:
        lines += ["", f"EvalHub is running at {url}", ""]
    lines.append(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    width = max(len(u.username) for u in USERS)
    for u in USERS:
        lines.append(f"  {u.username.ljust(width)}  {u.role:<9}  {u.what}")
    return lines
