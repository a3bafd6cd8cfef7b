"""Data sets, training protocols and the registry bundle of the face-ID models.

A data set is a dict of arrays: `image` (n, CAPTURE, CAPTURE, 3) uint8 first frames, `motion` (n, FRAMES-1, DIM),
`quality` (n, len(NAMES)), `label` ("live" or the attack family). A protocol trains the four spoof experts on
one part of the training data, the fusion tree on the rest (data the experts never saw), and scores a test set.
"""

from __future__ import annotations

import numpy as np

from workloads.face import data, metrics, models, motion, quality

TASK, NAME = "face", "faceid"
SKOPS_TRUSTED = ["sklearn.tree._tree.Tree"]  # beyond skops' defaults; anything else is refused when loading


def synth(split: str, families: list[str | None], seed: int) -> dict[str, np.ndarray]:
    """Render one presentation per entry of `families` (None = live) with its features. The held-out families
    exist only in the test split; test crops are at least CAPTURE source pixels wide (never upsampled)."""
    if split != "test" and set(families) & set(data.HELD_OUT_FAMILIES):
        raise ValueError(f"held-out families {data.HELD_OUT_FAMILIES} are rendered for the test split only")
    rng = np.random.default_rng(seed)
    src = data.sources(split)
    min_side = data.CAPTURE if split == "test" else 0
    out = dict(image=[], motion=[], quality=[], label=[])
    for fam in families:
        frames = data.sequence(rng, src[rng.integers(len(src))], fam, min_side=min_side)
        out["image"].append(frames[0])
        out["motion"].append(motion.features(frames))
        out["quality"].append(quality.measures(frames[0]))
        out["label"].append(fam or metrics.LIVE)
    return {k: np.asarray(v) for k, v in out.items()}


def plan(n_live: int, n_per_family: int, families: tuple[str, ...] = data.FAMILIES) -> list[str | None]:
    return [None] * n_live + [f for f in families for _ in range(n_per_family)]


def concat(parts: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def subset(ds: dict, mask: np.ndarray) -> dict:
    return {k: v[mask] for k, v in ds.items()}


def spoof_labels(ds: dict) -> np.ndarray:
    return (ds["label"] != metrics.LIVE).astype(np.int64)


def train_experts(ds: dict, steps: int, seed: int) -> tuple[dict, dict]:
    """(models, loss histories) of the four spoof experts trained on `ds`."""
    y = spoof_labels(ds)
    experts, losses = {}, {}
    experts["quality"] = models.fit_quality(ds["quality"], y)
    for scale in ("low", "high"):
        experts[f"patch_{scale}"], losses[f"patch_{scale}"] = models.fit_patch(ds["image"], y, scale, steps, seed=seed)
    experts["motion"], losses["motion"] = models.fit_motion(ds["motion"], y, steps, seed=seed)
    return experts, losses


def expert_probs(experts: dict, ds: dict) -> dict[str, np.ndarray]:
    return dict(
        quality=models.predict_quality(experts["quality"], ds["quality"]),
        patch_low=models.predict_patch(experts["patch_low"], ds["image"], "low"),
        patch_high=models.predict_patch(experts["patch_high"], ds["image"], "high"),
        motion=models.predict_motion(experts["motion"], ds["motion"]),
    )


def run_protocol(
    train: dict,
    test: dict,
    families: list[str],
    steps: int,
    seed: int,
    fusion_share: float = 0.3,
    threads: int = 1,
    extra_tests: dict[str, dict] | None = None,
) -> dict:
    """Train on live + `families` of `train`, evaluate every expert and the fused score on `test` (and on each
    of `extra_tests`, e.g. the held-out family, with the same models and thresholds: `metrics_<name>`).

    Thresholds (each expert's and the ensemble's) are the equal-error points on the fusion split, i.e. chosen
    without the test families. Returns metrics, thresholds, the trained models and the loss histories.
    """
    import torch

    torch.set_num_threads(threads)
    keep = np.isin(train["label"], [metrics.LIVE, *families])
    pool = subset(train, keep)
    rng = np.random.default_rng(seed)
    to_fusion = rng.random(len(pool["label"])) < fusion_share
    experts, losses = train_experts(subset(pool, ~to_fusion), steps, seed)
    val = subset(pool, to_fusion)
    val_probs = expert_probs(experts, val)
    tree = models.fit_fusion(val_probs, spoof_labels(val), seed)
    val_probs["ensemble"] = models.predict_fusion(tree, val_probs)
    thresholds = {m: metrics.eer_threshold(p, val["label"]) for m, p in val_probs.items()}
    thresholds["ensemble"] = 0.5
    thresholds["ensemble_single_frame"] = 0.5
    scored = {
        f"metrics_{name}" if name else "metrics": score_all(experts, tree, ds, thresholds)
        for name, ds in {"": test, **(extra_tests or {})}.items()
    }
    return dict(
        **scored,
        thresholds=thresholds,
        experts=experts,
        tree=tree,
        losses=losses,
        train_families=list(families),
        n_expert_train=int((~to_fusion).sum()),
        n_fusion=int(to_fusion.sum()),
        tree_importances=dict(zip(models.FUSION_COLUMNS, tree.feature_importances_.round(3).tolist())),
    )


def score_all(experts: dict, tree, ds: dict, thresholds: dict) -> dict:
    """ISO 30107-3 metrics of every expert, the ensemble and the single-frame ensemble on `ds`."""
    probs = expert_probs(experts, ds)
    probs["ensemble"] = models.predict_fusion(tree, probs)
    still = dict(probs, motion=np.full_like(probs["motion"], 0.5))  # a single selfie, no frames
    probs["ensemble_single_frame"] = models.predict_fusion(tree, still)
    return {m: metrics.pad_metrics(p, ds["label"], thresholds[m]) for m, p in probs.items()}


# ------------------------------------------------------------------------------------------------ face helpers
def view_bank(faces, views: int, style: str, seed: int) -> np.ndarray:
    """(faces, views, 32, 32) gray views of each face in one style ("id" or "selfie"), rendered once."""
    rng = np.random.default_rng(seed)
    return np.stack([np.stack([data.face_view(rng, f, style) for _ in range(views)]) for f in faces])


def eval_orientation(model, bank: np.ndarray, seed: int) -> float:
    """Accuracy over every view of a (faces, views, 32, 32) bank, each turned by a random multiple of 90 degrees."""
    rng = np.random.default_rng(seed)
    views = bank.reshape(-1, *bank.shape[2:])
    ks = rng.integers(0, 4, len(views))
    return float(np.mean([models.predict_orientation(model, np.rot90(v, k))[0] == 90 * k for v, k in zip(views, ks)]))


def eval_matcher(model, id_bank: np.ndarray, selfie_bank: np.ndarray) -> dict:
    """Genuine (same source face) vs impostor pairs of held-out faces: ROC AUC and TAR at FAR 1 %."""
    from sklearn.metrics import roc_auc_score

    ids, selfies = id_bank[:, 0], selfie_bank[:, 0]
    n = len(ids)
    genuine = [models.match_score(model, ids[i], selfies[i]) for i in range(n)]
    impostor = [models.match_score(model, ids[i], selfies[j]) for i in range(n) for j in range(n) if i != j]
    far1 = float(np.quantile(impostor, 0.99))
    return dict(
        roc_auc=float(roc_auc_score([1] * n + [0] * len(impostor), genuine + impostor)),
        tar_at_far_1pct=float(np.mean(np.asarray(genuine) > far1)),
        threshold_far_1pct=far1,
        genuine_pairs=n,
        impostor_pairs=len(impostor),
    )


# ------------------------------------------------------------------------------------------------ registry bundle
def bundle_files(experts: dict, tree, orientation, embed) -> dict[str, bytes]:
    import skops.io as sio

    from workloads.registry import torch_bytes

    return {
        "patch_low.pt": torch_bytes(experts["patch_low"].state_dict()),
        "patch_high.pt": torch_bytes(experts["patch_high"].state_dict()),
        "motion.pt": torch_bytes(experts["motion"].state_dict()),
        "orientation.pt": torch_bytes(orientation.state_dict()),
        "embed.pt": torch_bytes(embed.state_dict()),
        "quality.skops": sio.dumps(experts["quality"]),
        "fusion.skops": sio.dumps(tree),
    }


class FaceModels:
    """Everything /face/verify needs, loaded safely from a registry bundle, or untrained when there is none.

    `trained` is False for the fallback: random networks, a constant quality expert (0.5) and the mean of the
    experts instead of the tree; the app then says so in every response.
    """

    def __init__(self, files: dict[str, bytes] | None = None, meta: dict | None = None):
        import torch

        from workloads.registry import torch_state

        self.meta = meta or dict(task=TASK, name=NAME, version=None)
        self.trained = files is not None
        self.nets = dict(
            patch_low=models.PatchCNN(),
            patch_high=models.PatchCNN(),
            motion=models.MotionLSTM(motion.DIM),
            orientation=models.OrientationCNN(),
            embed=models.EmbedNet(),
        )
        torch.manual_seed(0)
        self.quality = self.tree = None
        self.thresholds = dict(self.meta.get("thresholds", {}))
        self.limits = self.meta.get("guidance_limits")
        if files is not None:
            import skops.io as sio

            for name, net in self.nets.items():
                net.load_state_dict(torch_state(files[f"{name}.pt"]))
            self.quality = sio.loads(files["quality.skops"], trusted=SKOPS_TRUSTED)
            self.tree = sio.loads(files["fusion.skops"], trusted=SKOPS_TRUSTED)
        for net in self.nets.values():
            net.eval()

    def spoof(self, expert: str, inputs: list) -> np.ndarray:
        """One expert's spoof probabilities for a batch (images, quality vectors or motion sequences)."""
        if expert == "quality":
            if self.quality is None:
                return np.full(len(inputs), 0.5, np.float32)
            return models.predict_quality(self.quality, np.stack(inputs))
        if expert == "motion":
            return models.predict_motion(self.nets["motion"], np.stack(inputs))
        return models.predict_patch(self.nets[expert], inputs, expert.split("_")[1])

    def fuse(self, probs: dict[str, np.ndarray]) -> np.ndarray:
        if self.tree is None:
            return models.fusion_input(probs)[:, -1]
        return models.predict_fusion(self.tree, probs)


def load(root: str | None = None, version: str = "latest") -> FaceModels:
    from workloads.registry import find_model

    found = find_model(TASK, NAME, version, root)
    return FaceModels(*found) if found else FaceModels()
