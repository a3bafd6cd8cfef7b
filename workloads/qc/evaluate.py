"""Re-measure a published QC model on fresh synthetic tubes: the served decision threshold and adversarial flag.

How to run:
    python -m workloads.qc.evaluate --registry workloads/builtin --seed 1000 --json runs/qc/fresh.json

Nothing is chosen here: the model's decision threshold (picked on its validation split) and its adversarial
detector with its threshold come from the registry bundle; `--seed` should be one the training run never used
(it used seeds 0-5 of its `--seed` 0). Results to expect: `precision` and `recall` of the verdict
"defect_probability >= decision_threshold" on `--normal` + `--defects` fresh images, recall at the fixed
precision, and both adversarial detectors' ROC AUC (attacks vs same-size benign noise) and flag rates.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import ClassVar

from workloads import contract
from workloads.contract import UsageError, WorkloadConfig, field


@dataclasses.dataclass
class EvaluateConfig(WorkloadConfig):
    """Measure a published QC model's served threshold and adversarial detector on fresh seeds."""

    workload: ClassVar[str] = "qc-evaluate"
    uses_ray: ClassVar[bool] = False

    seed: int = field(1000, help="seed of the fresh images (use one no training run used)")
    registry: str = field("workloads/builtin", help="registry folder or URI holding qc/tubes")
    version: str = field("latest", help="model version in the registry")
    normal: int = field(10000, help="fresh normal images", minimum=1)
    defects: int = field(100, help="fresh defective images", minimum=1)
    adversarial: int = field(400, help="fresh images attacked and perturbed benignly", minimum=4)
    eps: float = field(8 / 255, help="attack and noise budget (L-inf; images in [0, 1]), in (0, 1)")
    json: str = field("", help="also write the summary to this file")

    def smoke(self) -> EvaluateConfig:
        return self.capped(normal=1000, defects=10, adversarial=40)

    def validate(self) -> None:
        if not 0 < self.eps < 1:
            raise UsageError("--eps must lie in (0, 1)")


def run(cfg: EvaluateConfig, out: Path) -> dict:
    from workloads.qc import data, detector, models
    from workloads.registry import find_model, torch_state

    found = find_model(models.TASK, models.NAME, cfg.version, cfg.registry)
    if not found:
        raise UsageError(f"no qc/{models.NAME} model ({cfg.version}) in {cfg.registry}")
    files, meta = found
    if "adversarial_detector" not in meta:
        raise UsageError(f"the model {meta.get('version')} in {cfg.registry} predates the adversarial detector")
    model = models.DefectCNN()
    model.load_state_dict(torch_state(files["weights.pt"]))
    model.eval()
    images, labels, _ = data.dataset(cfg.normal, cfg.defects, cfg.seed)
    scores = models.predict(model, images)
    threshold = float(meta["decision_threshold"])
    x, y = detector.sample(cfg.adversarial, cfg.seed + 1)
    adversarial = detector.evaluate(
        model,
        meta["adversarial_detector"],
        x,
        y,
        meta["entropy_scale"],
        cfg.eps,
        cfg.seed + 2,
        float(meta["baseline_entropy_threshold"]),
    )
    served = adversarial["detectors"]["feature_lr"]
    summary = dict(
        model=dict(version=meta.get("version"), registry=cfg.registry, command=meta.get("command")),
        data=f"fresh synthetic tubes of seeds {cfg.seed} (defects) and {cfg.seed + 1}, {cfg.seed + 2} (attacks)",
        decision_threshold=threshold,
        decision_rule=meta.get("decision_rule"),
        **models.operating_point(labels, scores, threshold),
        recall_at_precision_0_9=models.recall_at_precision(labels, scores, 0.9),
        adversarial=adversarial,
        adversarial_worst_auc_vs_noise=served["worst_auc_vs_noise"],
        entropy_worst_auc_vs_noise=adversarial["detectors"]["entropy"]["worst_auc_vs_noise"],
        outputs={},
    )
    print(
        f"qc fresh seed {cfg.seed}: threshold {threshold:.4f} -> precision {summary['precision']:.3f}, "
        f"recall {summary['recall']:.3f}; adversarial detector worst AUC vs same-size noise "
        f"{summary['adversarial_worst_auc_vs_noise']:.3f} "
        f"(entropy baseline {summary['entropy_worst_auc_vs_noise']:.3f})"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    return contract.main(EvaluateConfig, run, argv)


if __name__ == "__main__":
    sys.exit(main())
