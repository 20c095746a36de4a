"""Type stubs of the Rust extension behind ``dirkit`` (use the functions of ``dirkit``)."""

from typing import List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Points = Optional[Sequence[Tuple[float, float, float]]]

def lds(labels: F64, bin_width: float, range: Optional[Tuple[float, float]], reweight_name: str,
        kernel: Optional[str], ks: int, sigma: float, compat: Optional[str],
        out_of_range_name: str, beta: float, clip: Tuple[float, float], alpha: float = 0.5
        ) -> Tuple[F64, float, float, npt.NDArray[np.uint64], F64, F64, F64, int]: ...
def denseweight(labels: F64, alpha: float, eps: float, bandwidth: Optional[float]) -> F64: ...
def relevance(y: F64, values: F64, extremes: str, coef: float, box_plot: str, control: Points
              ) -> Tuple[F64, List[Tuple[float, float, float]]]: ...
def sera(y_true: F64, y_pred: F64, y_train: F64, step: float, extremes: str, coef: float,
         box_plot: str, control: Points) -> float: ...
def shot_report(y_true: F64, y_pred: F64, y_train: F64, bin_width: float,
                range: Optional[Tuple[float, float]], many: int, few: int,
                sera_step: Optional[float], extremes: str, coef: float, box_plot: str,
                control: Points) -> str: ...
def resample(columns: Sequence[Tuple[F64, Optional[List[str]]]], names: Sequence[str],
             target: int, method: str, threshold: float, strategy: Sequence[float], k: int,
             pert: Optional[float], distance: Optional[str], seed: int, over: float, under: float,
             extremes: str, coef: float, box_plot: str, control: Points
             ) -> Tuple[List[F64], List[str]]: ...
def relevance_folds(y: F64, n_splits: int, n_repeats: int, threshold: float, seed: int,
                    extremes: str, coef: float, box_plot: str, control: Points
                    ) -> List[List[int]]: ...
def fold_scores(y_true: F64, y_pred: F64, y_train: F64, threshold: float, extremes: str,
                coef: float, box_plot: str, control: Points) -> str: ...
def choose(candidates: str, objective: str, max_all_loss: float) -> str: ...
def training_bin_width(y: F64) -> float: ...
