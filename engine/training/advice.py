"""What each diagnostic badge means and what to try, in the chapter's terms; and an epoch's badge explained.

Plain data, shared by `trainconsole explain` and the console's explain dialog. A setting named here as
`section.key` is a real setting (tests/engine/test_advice.py checks each one against the schema). A status this
version does not know (a newer run's files) still gets its message, its evidence and a generic line.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any, Iterable

from engine.events import Diagnostic


@dataclass(frozen=True)
class Advice:
    title: str  # the badge, as the console shows it
    meaning: str  # what it usually means
    what_to_try: tuple[str, ...]  # in the order worth trying


_LR_FIND = "trainconsole lr-find suggests one"
_NORMALIZE = 'standardise the inputs: data.normalize = "auto" (fitted on the training split only)'

NOT_LEARNING_TRY = (
    "Check that the labels go with the features: features and labels shuffled separately? the wrong column "
    "taken as the label (data.label_column)?",
    f"Try another training.lr ({_LR_FIND}): too small and the weights barely move, too large and they jump around.",
    "A model too small for the task: more or wider hidden layers (model.hidden), less dropout (model.dropout).",
    f"Check the data's scale: {_NORMALIZE}.",
)

ADVICE: dict[str, Advice] = {
    "ok": Advice(
        "OK",
        "No rule fired: train loss and val loss move together, and l'écart (val loss - train loss) stays small. "
        "Keep an eye on the loss chart: overfitting begins where val loss stops falling while train loss still falls.",
        (
            "Nothing to fix; keep training while val loss still falls.",
            "best.pth keeps the best epoch (by training.monitor) whatever happens next.",
        ),
    ),
    "nan": Advice(
        "NaN",
        "The loss became NaN or infinite (chapter 8.3's NaN check): the weights diverged, usually from a learning "
        "rate too high, or inputs with huge or missing values. Nothing trained after this point can be used.",
        (
            f"Lower training.lr, by 3 to 10 ({_LR_FIND}).",
            "Clip the gradients: training.grad_clip = 1.0.",
            f"Look for NaN or huge values in the data (data.csv_missing for empty cells); {_NORMALIZE}.",
            'With fp16, try training.precision = "bf16" or "fp32".',
            "Resume from best.pth or last.pth: a checkpoint is never written from NaN weights.",
        ),
    ),
    "diverging": Advice(
        "DIVERGING",
        "The training loss climbs instead of falling: far above the first epoch's, or above the constant "
        "predictor's (a model that always predicts the class priors), or rising several epochs in a row, or "
        "swinging: more than doubled in one epoch, good epochs between bad ones. "
        "The optimizer's steps overshoot: the learning rate is usually too high. NaN often comes next.",
        (
            f"Lower training.lr, by 3 to 10 ({_LR_FIND}).",
            "Clip the gradients: training.grad_clip = 1.0.",
            f"Check the data's scale: {_NORMALIZE}; no huge or missing values.",
            'A scheduler that lowers the rate as training goes: training.scheduler = "cosine" or "plateau".',
        ),
    ),
    "not_learning": Advice(
        "NOT LEARNING",
        "The val loss is not clearly below the constant predictor's (a model that always predicts the class "
        "priors, whatever the features): the model has found no link between the features and the labels yet. "
        "'At chance' in the message: its accuracy is the majority class's share too, it answers the most common "
        "class or guesses.",
        NOT_LEARNING_TRY,
    ),
    "overfitting": Advice(
        "OVERFITTING",
        "The model learns the training set by heart instead of what generalises: train loss keeps falling while "
        "val loss stops falling or rises from its best (chapter 8.1's 'Début overfitting'), and l'écart grows: "
        "chapter 8.3 says val loss - train loss above 0.5 or train accuracy more than 10 points above val "
        "accuracy (diagnostics.overfit_loss_gap, diagnostics.overfit_acc_gap; the bars this run used are in the "
        "message). Epochs past the onset make the model worse on new data.",
        (
            "More dropout, the chapter's régularisation: model.dropout = 0.3 to 0.5.",
            "Weight decay, an L2 penalty on the weights: training.weight_decay = 1e-4 (best with training.optimizer "
            '= "adamw").',
            "More data, or data augmentation on the training split only: data.augment = true.",
            "Early stopping: training.patience = 5 stops once training.monitor has not improved for 5 epochs.",
            "A smaller model: fewer or narrower hidden layers (model.hidden).",
            "best.pth keeps the best epoch (chapter 7.3): use it, not the last one (trainconsole eval RUN).",
        ),
    ),
    "underfitting": Advice(
        "UNDERFITTING",
        "Train loss is still high after many epochs (chapter 8.3: above 1.0 after epoch 20; "
        "diagnostics.underfit_loss, diagnostics.underfit_after; the bar this run used is in the message): the "
        "model does not even fit the training data. "
        "It is too small or too constrained, or the learning rate does not suit it.",
        (
            'A bigger model: more or wider hidden layers (model.hidden), or model.name = "cnn" for images.',
            "Less régularisation: lower model.dropout and training.weight_decay.",
            f"Tune training.lr ({_LR_FIND}), or train longer: raise training.epochs and resume.",
            f"Check the data's scale: {_NORMALIZE}.",
        ),
    ),
    "vanishing_gradients": Advice(
        "VANISHING GRADIENTS",
        "The gradients that reach the first layers are tiny next to the last layers': those layers barely learn. "
        "Typical of deep stacks of sigmoid or tanh (their slope is near 0 once saturated) and of a poor "
        "initialisation.",
        (
            "ReLU instead of sigmoid or tanh in the hidden layers of a model of your own (the built-in mlp and cnn "
            "use ReLU).",
            "Normalisation layers between the layers (BatchNorm, LayerNorm; the built-in cnn has BatchNorm).",
            "An initialisation made for the activation: He (Kaiming) for ReLU, Xavier for tanh.",
            "Fewer layers (model.hidden), or residual connections in a model of your own.",
        ),
    ),
    "exploding_gradients": Advice(
        "EXPLODING GRADIENTS",
        "The gradient norm is very large or keeps growing: each step jumps far, the loss jumps with it, "
        "and NaN is often next.",
        (
            f"Lower training.lr ({_LR_FIND}).",
            "Clip the gradient norm: training.grad_clip = 1.0.",
            f"Check the initialisation (weights too large) and the data's scale: {_NORMALIZE}.",
        ),
    ),
    "dying_relu": Advice(
        "DYING ReLU",
        "Many ReLU units output 0 for every input: their gradient is 0 too, so they never come back. A large "
        "step (a learning rate too high) or a large negative bias pushes them there.",
        (
            f"Lower training.lr ({_LR_FIND}).",
            "LeakyReLU (or GELU) instead of ReLU in a model of your own.",
            f"An initialisation made for ReLU (He / Kaiming); {_NORMALIZE}.",
        ),
    ),
    "saturated_units": Advice(
        "SATURATED UNITS",
        "Many sigmoid or tanh units sit on their flat ends (outputs near 0 or 1, or near -1 or 1): their gradient "
        "is near 0, so they learn slowly. Usually inputs out of scale or weights too large.",
        (
            f"Normalise the inputs: {_NORMALIZE}.",
            "A smaller initialisation: Xavier (Glorot) for sigmoid and tanh.",
            f"Lower training.lr ({_LR_FIND}).",
            "ReLU instead of sigmoid or tanh in the hidden layers, or normalisation layers before them.",
        ),
    ),
}


def advice_for(diagnostic: Diagnostic) -> Advice:
    """The badge's advice; for a status this version does not know, its label and a generic line."""
    known = ADVICE.get(diagnostic.status)
    if known is not None:
        return known
    return Advice(
        diagnostic.label,
        "This version of trainconsole has no explanation for this badge (a run written by a newer version?): "
        "its message and evidence above are what its rule saw.",
        (
            "Compare train and val loss on the charts (trainconsole plot RUN).",
            "Read the message above: it names the rule and the numbers behind it.",
        ),
    )


# -- evidence --------------------------------------------------------------------------------------------------
# what the evidence names the diagnostics use mean, in the chapter's words; another name is shown as it is
EVIDENCE_NAMES = {
    "loss_gap": "val loss - train loss (l'écart)",
    "acc_gap": "train accuracy - val accuracy",
    "loss_gap_bar": "the loss gap the rule allows",
    "onset_epoch": "epoch of the best val loss: the onset (chapter 8.1)",
    "train_loss_then": "the train loss at the onset epoch",
    "bar": "the train loss the rule allows",
    "best_val_loss": "the lowest val loss so far",
    "first_train_loss": "epoch 1's train loss",
    "factor": "how many times above it the rule allows",
    "rising_epochs": "epochs the train loss rose in a row",
    "jump_epoch": "the epoch the loss more than doubled",
    "jump_from": "the loss before the jump",
    "jump_to": "the loss it jumped to",
    "constant_loss": "the constant predictor's loss (class priors)",
    "majority_acc": "the majority class's share (constant predictor)",
    "val_samples": "validation samples",
    "val_loss": "this epoch's val loss",
    "train_loss": "this epoch's train loss",
    "blow_up_epoch": "the epoch the loss blew up",
    "blow_up_train_loss": "the train loss it blew up to",
    "blow_up_val_loss": "the val loss it blew up to",
    "grad_norm": "gradient norm",
    "weight_norm": "weight norm",
    "median_grad_to_weight": "gradient norm / weight norm, median layer",
    "first_to_last_ratio": "first layer's gradient/weight ratio / the last's",
    "dying_relu_share": "share of the layer's ReLU units that are dead",
    "saturated_units_share": "share of the layer's units that are saturated",
}
_PERCENT_ENDINGS = ("acc", "acc_gap", "share", "fraction")
_COUNT_ENDINGS = ("epoch", "epochs", "samples", "count", "units", "layers", "streak", "%")


def format_value(name: str, value: float) -> str:
    """One evidence number: accuracies and shares in percent, counts whole, a gap signed, a loss to 4 decimals."""
    if not math.isfinite(value):
        return str(value)
    sign = "+" if name.endswith("gap") else ""
    if name.endswith(_PERCENT_ENDINGS):
        return f"{value:{sign}.1%}"
    if name.endswith(_COUNT_ENDINGS) and float(value).is_integer():
        return str(int(value))
    if value == 0 or not 1e-3 <= abs(value) < 1e4:
        return f"{value:{sign}.4g}"
    return f"{value:{sign}.4f}"


def evidence_lines(evidence: dict[str, float]) -> list[str]:
    """One line per number: its name, its value, and what it is when the name is one of ours."""
    width = max((len(name) for name in evidence), default=0)
    lines = []
    for name, value in evidence.items():
        what = EVIDENCE_NAMES.get(name, "")
        line = f"{name:<{width}}  {format_value(name, value):>9}"
        lines.append(f"{line}  {what}" if what else line)
    return lines


# -- one epoch's badge explained -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Explanation:
    epoch: int
    diagnostic: Diagnostic
    advice: Advice
    recorded: bool  # False: only the status is known (an old run's metrics.jsonl), not its message or evidence

    def lines(self, width: int | None = None) -> list[str]:
        """The badge and epoch, the evidence, what it usually means, what to try; the prose wrapped to `width` if
        given (the evidence's table never is)."""
        fit = (lambda text: [text]) if width is None else (lambda text: _wrap(text, width))
        d = self.diagnostic
        out = [f"{self.advice.title} at epoch {self.epoch}", ""]
        if self.recorded:
            out += fit(f"Evidence: {d.message}" if d.message else "Evidence:")
            out += [f"  {line}" for line in evidence_lines(d.evidence)]
        else:
            out += fit("Evidence: not recorded (metrics.jsonl has this epoch's badge, events.jsonl no readable record)")
        out += ["", "What it usually means:", *fit(f"  {self.advice.meaning}"), "", "What to try:"]
        for item in self.advice.what_to_try:
            out += fit(f"  - {item}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The explanation as JSON-ready data (stable keys); a non-finite evidence number as a string ("nan")."""
        d = self.diagnostic
        return {
            "epoch": self.epoch,
            "status": d.status,
            "title": self.advice.title,
            "message": d.message,
            "evidence": {k: v if math.isfinite(v) else str(v) for k, v in d.evidence.items()},
            "evidence_recorded": self.recorded,
            "meaning": self.advice.meaning,
            "what_to_try": list(self.advice.what_to_try),
        }


def explain(diagnostic: Diagnostic, epoch: int, recorded: bool = True) -> Explanation:
    """Epoch `epoch`'s badge: its evidence, what it usually means, what to try."""
    return Explanation(epoch, diagnostic, advice_for(diagnostic), recorded)


def _wrap(line: str, width: int) -> list[str]:
    if len(line) <= width:
        return [line]
    stripped = line.lstrip(" ")
    indent = " " * (len(line) - len(stripped))
    hanging = indent + "  " if stripped.startswith("- ") or not indent else indent  # under the item's text
    # a word is never split: a setting's name or a number stays whole, to copy
    wrapped = textwrap.wrap(
        stripped,
        width,
        initial_indent=indent,
        subsequent_indent=hanging,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return wrapped or [line]


# -- the badges of a run -----------------------------------------------------------------------------------------
def badge_epochs(statuses: Iterable[tuple[int, str]]) -> dict[str, list[int]]:
    """(epoch, status) pairs as the epochs of each non-OK badge, in order of first appearance."""
    found: dict[str, list[int]] = {}
    for epoch, status in sorted(statuses):
        if status and status != "ok":
            found.setdefault(status, []).append(epoch)
    return found


def epoch_spans(epochs: list[int]) -> str:
    """[3, 4, 5, 9] as "epochs 3-5, 9"; [7] as "epoch 7"."""
    spans: list[list[int]] = []
    for epoch in sorted(epochs):
        if spans and epoch == spans[-1][1] + 1:
            spans[-1][1] = epoch
        else:
            spans.append([epoch, epoch])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"epoch{'s' if len(epochs) > 1 else ''} {text}"


def badge_summary(statuses: Iterable[tuple[int, str]]) -> str:
    """One line: each non-OK badge and its epochs ("overfitting: epochs 12-20; nan: epoch 21"), or that all were OK."""
    found = badge_epochs(statuses)
    if not found:
        return "every epoch OK"
    return "; ".join(f"{status}: {epoch_spans(epochs)}" for status, epochs in found.items())
