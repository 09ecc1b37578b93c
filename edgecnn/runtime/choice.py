"""``--runtime ort|openvino|auto`` (and ``--precision auto``) -> the engine to open: one function that
``infer``, ``eval``, ``bench`` and the Python API all call. Torch-free.

``auto`` reads the configuration ``edgecnn tune`` chose for this file on this host
(``edgecnn.runtime.profile.lookup``): its runtime, and with ``precision="auto"`` the file of the chosen
precision (e.g. the INT8 variant), its threads, batch and runtime options. Without a profile ``auto``
means onnxruntime, the default, and ``reason`` says so: the output of every command names the runtime
that ran and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.errors import UsageError
from edgecnn.runtime.profile import HINTED

CHOICES = ("ort", "openvino", "auto")
# runtime options a profile may carry that Engine takes as keyword arguments (others are kept in ``options``)
ENGINE_OPTIONS = {"ort": ("graph_opt", "spinning", "affinity", "optimized_model"),
                  "openvino": ("inference_precision",)}
# --precision: auto (the tuned profile's file), or the file of that precision (the one given, or its variant
# beside it: ``runtime.profile.variant_path``), or bf16 (the FP32 file in OpenVINO with its bf16 inference
# precision, on CPUs with native bf16: ``edgecnn.bf16``); None: the file as given
PRECISIONS = ("auto", "fp32", "int8", "bf16")


@dataclass
class Resolved:
    """What to open. ``runtime``: "ort" or "openvino"; ``path``: the file (the profile's precision file
    where ``precision="auto"`` found one); ``threads``/``batch``: the profile's (None when no profile
    chose them); ``reason``: why this runtime, in words (``"asked"``, ``"tuned profile"``, ``"no
    profile: onnxruntime"``); ``choice``: the profile's whole configuration, or None."""

    runtime: str
    path: Path
    reason: str
    threads: int | None = None
    batch: int | None = None
    options: dict = field(default_factory=dict)
    choice: dict | None = None

    @property
    def tuned(self) -> bool:
        return self.choice is not None

    def engine_kwargs(self) -> dict:
        """The profile's runtime options that ``Engine`` takes (e.g. ort's ``graph_opt``, ``spinning``); the
        saved optimised graph only while it is of the file that runs and still there."""
        out = {k: v for k, v in self.options.items() if k in ENGINE_OPTIONS.get(self.runtime, ())}
        saved = out.pop("optimized_model", None)
        if saved and self.choice is not None and Path(self.choice.get("path", "")).resolve() == self.path.resolve() \
                and Path(saved).is_file():
            out["optimized_model"] = saved
        return out

    @property
    def bf16(self) -> bool:
        """Whether this runs the file in OpenVINO's bf16 inference precision."""
        return self.runtime == "openvino" and self.options.get("inference_precision") == "bf16"

    def describe(self) -> dict:
        """For a command's JSON summary: runtime, why, the file that runs, and the tuned settings."""
        d = {"runtime": self.runtime, "reason": self.reason, "model": str(self.path)}
        if self.bf16:  # OpenVINO computes the FP32 file in bf16: say so, tuned or asked
            d.update(precision="bf16", threads=self.threads, batch=self.batch)
        if self.choice is not None:
            tuned = self.choice.get("precision")
            d.update(precision=tuned, threads=self.threads, batch=self.batch)
            if self.bf16:
                d["precision"] = "bf16"
            elif tuned in HINTED or Path(self.choice.get("path", "")).resolve() != self.path.resolve():
                from edgecnn.bench.targets import precision_of  # not the tuned precision's file or setting

                d["precision"] = precision_of(self.path)
            if d["precision"] != tuned:
                d["tuned_precision"] = tuned
        return d

    def line(self) -> str:
        """One line for stderr: which runtime runs which file, and why."""
        return describe_line(self.describe())


def describe_line(d: dict) -> str:
    """``Resolved.describe()``'s dict as one line: which runtime runs which file, and why."""
    from edgecnn.runtime.session import RUNTIMES

    why = d["reason"]
    if "precision" in d:
        why += f": precision {d['precision']}, threads {d['threads'] or 'default'}, batch {d['batch'] or 1}"
        if d.get("tuned_precision") and d["tuned_precision"] != d["precision"]:
            what = "it" if d["tuned_precision"] in HINTED else "its file"
            why += f"; tuned precision {d['tuned_precision']}: --precision auto runs {what}"
    elif why.startswith("no profile"):
        why = f"no profile for this file on this host; 'edgecnn tune {d['model']}' makes one"
    return f"runtime: {RUNTIMES[d['runtime']]} ({why}) for {d['model']}"


def check_precision(precision: str | None) -> str | None:
    if precision is not None and precision not in PRECISIONS:
        raise UsageError(f"unknown --precision '{precision}'; choose one of: {', '.join(PRECISIONS)}")
    return precision


def precision_file(model_path: str | Path, precision: str) -> Path:
    """The file of ``model_path`` at ``precision`` (fp32 | int8): the file itself when it is stored so, an
    INT8 file's FP32 source (its contract names it), or the variant beside it (``m.int8.onnx``)."""
    from edgecnn.bench.targets import contract_of, precision_of
    from edgecnn.runtime.profile import variant_path

    path = Path(model_path)
    own = precision_of(path)
    if own == precision:
        return path
    if precision == "fp32":
        c = contract_of(path)
        source = ((c.quantization or {}).get("source") or {}).get("file") if c is not None else None
        if source and (path.parent / source).is_file():  # quantize records the name; the files sit together
            return path.parent / source
        raise UsageError(f"--precision fp32: {path} is {own.upper()} and names no FP32 file that is there; "
                         "give the FP32 file")
    beside = variant_path(path, precision)
    if own == "fp32" and beside.is_file():
        return beside
    raise UsageError(f"--precision {precision}: no {beside.name} beside {path}; make it with "
                     f"'edgecnn quantize {path} --calib DIR' (or 'edgecnn tune {path} --calib DIR')")


def check_runtime(runtime: str) -> str:
    if runtime not in CHOICES:
        raise UsageError(f"unknown --runtime '{runtime}'; choose one of: {', '.join(CHOICES)}")
    return runtime


def resolve(model_path: str | Path, runtime: str = "ort", precision: str | None = None,
            objective: str = "latency", host: str | None = None) -> Resolved:
    """The engine to open for ``model_path`` when the user asked for ``runtime`` (ort|openvino|auto) and
    ``precision`` (None: the file as given; "auto": the tuned profile's precision file; "fp32"/"int8": the
    file of that precision, ``precision_file``).

    ``objective``: the profile entry to read, "latency" (batch 1) or "throughput". A profile is read only
    when something is "auto"; an explicit runtime is never overridden."""
    check_runtime(runtime)
    check_precision(precision)
    path = Path(model_path)
    if precision == "bf16":
        return _bf16(path, runtime, objective, host)
    if precision not in (None, "auto"):
        # the tuned profile is the FP32 file's: its choice of runtime and settings holds for its variants too
        precision_path = precision_file(path, precision)
        res = resolve(path, runtime, None, objective, host)
        res.path = precision_path
        return res
    choice = None
    if "auto" in (runtime, precision):
        from edgecnn.runtime import profile

        choice = profile.lookup(path, objective, host=host)
    if runtime != "auto":
        if precision == "auto" and choice is not None:  # the tuned precision's file; its settings if same runtime
            same = choice.get("runtime") == runtime
            file = path if choice.get("precision") in HINTED else Path(choice["path"])
            return Resolved(runtime, file, "asked; precision from the tuned profile",
                            **(_settings(choice) if same else {}), choice=choice)
        return Resolved(runtime, path, "asked")
    if choice is None:
        return Resolved("ort", path, "no profile: onnxruntime")
    if choice["runtime"] == "openvino":
        from edgecnn.runtime.openvino import available

        if not available():
            return Resolved("ort", path, "the tuned profile chose OpenVINO, which is not installed: onnxruntime")
    settings = _settings(choice)
    if precision != "auto":  # the file as given, at its own precision: not the tuned precision's setting
        for k in HINTED.get(choice.get("precision"), ("", {}))[1]:
            settings["options"].pop(k, None)
    # --precision auto: the tuned precision's file; a precision that is a runtime setting (bf16) runs the file given
    tuned_file = precision == "auto" and choice.get("precision") not in HINTED
    return Resolved(choice["runtime"], Path(choice["path"]) if tuned_file else path, "tuned profile",
                    **settings, choice=choice)


def _settings(choice: dict) -> dict:
    return {"threads": choice.get("threads"), "batch": choice.get("batch"),
            "options": dict(choice.get("options") or {})}


def _bf16(path: Path, runtime: str, objective: str, host: str | None, native=None) -> Resolved:
    """``--precision bf16``: the FP32 file (this one, or the one an INT8 file was made from) in OpenVINO with
    its bf16 inference precision; ``--runtime auto`` takes the tuned profile's threads when it chose OpenVINO.
    ``native``: ``edgecnn.bf16.native``'s answer for this host (tests inject it)."""
    from edgecnn import bf16

    if runtime == "ort":
        raise UsageError("--precision bf16 is OpenVINO's bf16 inference precision; give --runtime openvino or auto")
    ok, why = native if native is not None else bf16.host_native()
    if not ok:
        raise UsageError(f"--precision bf16: {why}; run fp32 (or int8) on this host")
    fp32 = precision_file(path, "fp32")
    hint = dict(HINTED["bf16"][1])
    if runtime == "auto":
        from edgecnn.runtime import profile

        choice = profile.lookup(fp32, objective, host=host)
        if choice is not None and choice.get("runtime") == "openvino":
            return Resolved("openvino", fp32, "asked; threads from the tuned profile", choice.get("threads"),
                            choice.get("batch"), hint, choice)
    return Resolved("openvino", fp32, "asked", options=hint)


def open_engine(model_path: str | Path, runtime: str = "ort", precision: str | None = None,
                objective: str = "latency", **engine_kwargs):
    """``resolve`` then ``Engine``: the Python API of ``--runtime``. ``engine_kwargs`` are ``Engine``'s
    (one given as None takes the profile's, else Engine's default). The engine's ``resolved`` says what ran
    and why."""
    from edgecnn.runtime.session import Engine

    res = resolve(model_path, runtime, precision, objective)
    kwargs = {"threads": res.threads, **res.engine_kwargs(),
              **{k: v for k, v in engine_kwargs.items() if v is not None}}
    engine = Engine(res.path, runtime=res.runtime, **kwargs)
    engine.resolved = res
    return engine
