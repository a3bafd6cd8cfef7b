"""Face-ID on honest synthetic data: orientation, quality, four spoof experts, tree fusion, a small matcher.

How to run:
    python -m workloads.face --smoke-test                     # about a minute on 2 CPUs
    python -m workloads.face                                   # full metrics, ~6 minutes on 2 CPUs
    python -m workloads.face --registry workloads/builtin --steps 600   # refresh the committed model

Presentations are rendered from scikit-image pictures (see workloads/face/data.py) in Ray tasks; the
protocols run as Ray tasks too: "all" (every attack family in training, held-out scenes and faces for testing)
and one leave-one-family-out run per attack family; the "all" models are also scored on a held-out attack family
(`data.HELD_OUT_FAMILIES`, rendered for testing only, never used in development). Test scenes are native-resolution
pictures (no upsampled thumbnails). Results to expect: summary.json with ISO/IEC 30107-3 APCER,
BPCER and ACER per expert and for the fused score, orientation accuracy and matcher ROC AUC, plots
(acer.png, losses.png, samples.png) and a registry bundle `<registry>/face/faceid/v<N>/`.
Every figure is measured on synthetic data. Figures: workloads/face/README.md.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from workloads import contract
from workloads.contract import WorkloadConfig, field
from workloads.registry import PublishesModels
from workloads.tasks import FansOut

ENOUGH = "(experts and fusion both need data)"


@dataclasses.dataclass
class FaceConfig(PublishesModels, FansOut, WorkloadConfig):
    """Train and evaluate the face-ID models on synthetic presentations (live vs screen/print attacks)."""

    workload: ClassVar[str] = "face"

    seed: int = field(0, help="seed of data and initialisation")
    live: int = field(800, help=f"live training presentations {ENOUGH}", minimum=8)
    per_family: int = field(200, help=f"training presentations per attack family {ENOUGH}", minimum=4)
    test_live: int = field(400, help="live test presentations (held-out native-resolution scenes)", minimum=1)
    test_per_family: int = field(
        100, help="test presentations per attack family (and of the held-out family)", minimum=1
    )
    lofo: bool = field(True, help="also run leave-one-family-out protocols (one per attack family)")
    steps: int = field(500, help="optimiser steps of each patch CNN and of the LSTM", minimum=1)
    aux_steps: int = field(400, help="optimiser steps of the orientation CNN and of the face embedding", minimum=1)
    views: int = field(
        12, help="rendered ID-photo and selfie views per training face (orientation, matcher)", minimum=1
    )
    chunk: int = field(40, help="presentations rendered per Ray task", minimum=1)

    def smoke(self) -> FaceConfig:
        return self.capped(
            live=64, per_family=16, test_live=32, test_per_family=8, steps=40, aux_steps=30, views=3, chunk=64
        )


def _render(tasks, split: str, live: int, per_family: int, chunk: int, seed: int, families=None) -> dict:
    from workloads.face import data, train

    remote, get, _ = tasks
    todo = train.plan(live, per_family, families or data.FAMILIES)
    synth = remote(train.synth)
    return train.concat(
        get([synth(split, todo[i : i + chunk], seed * 100_003 + i) for i in range(0, len(todo), chunk)])
    )


def _protocol(train_ds, test_ds, families, steps, seed, keep_models, extra_tests=None):
    from workloads.face import train

    result = train.run_protocol(train_ds, test_ds, families, steps, seed, extra_tests=extra_tests)
    if not keep_models:
        for key in ("experts", "tree"):
            result.pop(key)
    return result


def _aux(steps: int, views: int, seed: int) -> dict:
    """Orientation CNN and face embedding on the training faces, evaluated on the held-out faces."""
    import torch

    from workloads.face import data, models, train

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    faces, test_faces = data.faces_gray("train"), data.faces_gray("test")
    banks = {
        (split, style): train.view_bank(f, views if split == "train" else 2, style, seed + i)
        for i, (split, f) in enumerate((("train", faces), ("test", test_faces)))
        for style in ("id", "selfie")
    }
    orient, orient_loss = models.fit_orientation(
        np.concatenate([banks["train", "id"], banks["train", "selfie"]], 1), steps, seed=seed
    )
    embed, embed_loss = models.fit_embedding(banks["train", "id"], banks["train", "selfie"], steps, seed=seed)
    test_bank = np.concatenate([banks["test", "id"], banks["test", "selfie"]], 1)
    return dict(
        orientation=orient,
        embed=embed,
        losses=dict(orientation=orient_loss, embed=embed_loss),
        orientation_accuracy=train.eval_orientation(orient, test_bank, seed + 1),
        matcher=train.eval_matcher(embed, banks["test", "id"], banks["test", "selfie"]),
        seconds=time.perf_counter() - t0,
    )


def _plots(out, protocols: dict, losses: dict, samples: dict) -> None:
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workloads.plots import plot_losses

    names = list(next(iter(protocols.values()))["metrics"])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(names)
    for i, m in enumerate(names):
        ax.bar(
            np.arange(len(protocols)) + i * width,
            [100 * p["metrics"][m]["acer"] for p in protocols.values()],
            width,
            label=m,
        )
    ax.set_xticks(np.arange(len(protocols)) + 0.4 - width / 2, list(protocols), fontsize=8)
    ax.set_ylabel("ACER (%) on the test families")
    ax.set_title("Anti-spoofing ACER per protocol (synthetic data; 'without X' = X held out)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "acer.png", dpi=110)
    plt.close(fig)
    plot_losses(out / "losses.png", losses, "Face-ID models, synthetic data")
    rows = [np.concatenate(imgs, 1) for imgs in samples.values()]
    grid = np.concatenate(rows, 0)
    for i, label in enumerate(samples):
        cv2.putText(
            grid, label, (3, i * grid.shape[0] // len(rows) + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1
        )
    cv2.imwrite(str(out / "samples.png"), grid[..., ::-1])


def _round(obj):
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, float):
        return round(obj, 4)
    return obj


def run(cfg: FaceConfig, out: Path) -> dict:
    from workloads.face import data, models, motion, quality, train

    tasks = cfg.tasks()
    remote, get, put = tasks
    t0 = time.perf_counter()
    train_ds = _render(tasks, "train", cfg.live, cfg.per_family, cfg.chunk, cfg.seed)
    test_ds = _render(tasks, "test", cfg.test_live, cfg.test_per_family, cfg.chunk, cfg.seed + 1)
    # the held-out family: attacks only (its own seed), scored against the same live test presentations
    held = _render(tasks, "test", 0, cfg.test_per_family, cfg.chunk, cfg.seed + 2, data.HELD_OUT_FAMILIES)
    held_ds = train.concat([train.subset(test_ds, test_ds["label"] == "live"), held])
    render_s = time.perf_counter() - t0
    train_ref, test_ref = put(train_ds), put(test_ds)
    proto = remote(_protocol)
    runs = {
        "all families": proto(
            train_ref, test_ref, list(data.FAMILIES), cfg.steps, cfg.seed, True, {"held_out": held_ds}
        )
    }
    if cfg.lofo:
        for fam in data.FAMILIES:
            test_f = train.subset(test_ds, np.isin(test_ds["label"], ["live", fam]))
            runs[f"without {fam}"] = proto(
                train_ref, test_f, [f for f in data.FAMILIES if f != fam], cfg.steps, cfg.seed, False
            )
    aux_ref = remote(_aux)(cfg.aux_steps, cfg.views, cfg.seed)
    protocols = dict(zip(runs, get(list(runs.values()))))
    aux = get(aux_ref)
    main_run = protocols["all families"]
    live_q = train_ds["quality"][train_ds["label"] == "live"]
    limits = quality.guidance_limits(live_q)
    summary = dict(
        data="synthetic: scikit-image pictures (astronaut, coffee, rocket, retina, immunohistochemistry, 70 "
        "lfw_subset faces for training; chelsea and 30 other faces for testing) with procedural captures "
        "and synthesised screen/print attacks; no real presentation attacks",
        render_s=round(render_s, 1),
        n_train=int(len(train_ds["label"])),
        n_test=int(len(test_ds["label"])),
        families=list(data.FAMILIES),
        quality_measures=list(quality.NAMES),
        motion_features=motion.DIM,
        frames=data.FRAMES,
        held_out_families=list(data.HELD_OUT_FAMILIES),
        in_distribution={m: v for m, v in main_run["metrics"].items()},
        held_out_family={
            m: dict(acer=v["acer"], apcer=v["apcer"], bpcer=v["bpcer"]) for m, v in main_run["metrics_held_out"].items()
        },
        leave_one_family_out={
            name[len("without ") :]: {
                m: dict(acer=v["acer"], apcer=v["apcer"], bpcer=v["bpcer"]) for m, v in p["metrics"].items()
            }
            for name, p in protocols.items()
            if name.startswith("without ")
        },
        tree_importances=main_run["tree_importances"],
        thresholds=main_run["thresholds"],
        orientation_accuracy=aux["orientation_accuracy"],
        matcher=aux["matcher"],
        losses_first_last={
            k: [float(np.mean(v[:10])), float(np.mean(v[-10:]))]
            for k, v in {**main_run["losses"], **aux["losses"]}.items()
        },
    )
    summary["acer_table"] = {
        name: {m: round(100 * v["acer"], 2) for m, v in p["metrics"].items()} for name, p in protocols.items()
    }
    summary["acer_table"]["held out: " + ", ".join(data.HELD_OUT_FAMILIES)] = {
        m: round(100 * v["acer"], 2) for m, v in main_run["metrics_held_out"].items()
    }
    rng = np.random.default_rng(cfg.seed)
    samples = {
        lab: [ds["image"][i] for i in rng.choice(np.flatnonzero(ds["label"] == lab), 6)]
        for ds, labs in ((test_ds, ["live", *data.FAMILIES]), (held, data.HELD_OUT_FAMILIES))
        for lab in labs
    }
    _plots(out, protocols, {**main_run["losses"], **aux["losses"]}, samples)
    if cfg.publish:
        meta = dict(
            capture=data.CAPTURE,
            frames=data.FRAMES,
            tile=models.TILE,
            experts=list(models.EXPERTS),
            quality_measures=list(quality.NAMES),
            thresholds=main_run["thresholds"],
            guidance_limits=limits,
            metrics=dict(
                acer_in_distribution=main_run["metrics"]["ensemble"]["acer"],
                acer_held_out_family=main_run["metrics_held_out"]["ensemble"]["acer"],
                orientation_accuracy=aux["orientation_accuracy"],
                matcher_roc_auc=aux["matcher"]["roc_auc"],
            ),
            training_data=dict(
                source="workloads.face.data (synthetic)", live=cfg.live, per_family=cfg.per_family, seed=cfg.seed
            ),
            limits="synthetic training data; the match score compares a picture's ID-photo and selfie views "
            "(lfw_subset has one picture per person), not identities across photographs",
        )
        files = train.bundle_files(main_run["experts"], main_run["tree"], aux["orientation"], aux["embed"])
        summary["registry"] = cfg.publish_model(train.TASK, train.NAME, files, meta)
    summary["outputs"] = {name: str(out / name) for name in ("acer.png", "losses.png", "samples.png")}
    print(
        "face: ACER in distribution (synthetic data): "
        + ", ".join(f"{m} {100 * v['acer']:.1f}%" for m, v in main_run["metrics"].items())
        + f"; held-out {', '.join(data.HELD_OUT_FAMILIES)}: ensemble "
        + f"{100 * main_run['metrics_held_out']['ensemble']['acer']:.1f}%"
        + f"; orientation accuracy {aux['orientation_accuracy']:.3f}; matcher AUC {aux['matcher']['roc_auc']:.3f}"
        + f"; results in {out}"
    )
    return _round(summary)


def main(argv: list[str] | None = None) -> int:
    return contract.main(FaceConfig, run, argv)


if __name__ == "__main__":
    sys.exit(main())
