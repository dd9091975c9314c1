"""The AFT paper's analyses (Jeddi et al. 2020) as library functions; `aft-fast analyze` runs them.

- `curves`: the overfitting curves of Figure 1, read from run directories (metrics.jsonl only).
- `plateau`: the step-LR(i, γ) plateau study of Figure 4, plus AFT's schedule, as one resumable sweep.
- `embedding`: the LDA → PCA picture of Figure 3 for several checkpoints, with a separation score.
"""
