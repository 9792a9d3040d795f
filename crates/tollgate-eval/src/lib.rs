//! `tollgate-eval` measures Tollgate's detection quality on public data
//! nobody here made, with the same detector code the service runs, and
//! renders what it found for a person to check. It holds the pure
//! evaluation code: NAB's scoring rules re-implemented from
//! `shared/data/nab/SCOREBOARD.md` (probation, windows, scaled sigmoid, the
//! three cost profiles, the corpus-wide threshold sweep, normalisation), the
//! ranking metrics (AUROC, AUPRC), readers for the NAB corpus and the ODDS
//! tables, the runners that stream a NAB series through the engine's
//! `VolumeDetector` + `Calibrator` (one tenant per series) and an ODDS table
//! through its `NumericModel` (score, then learn), and the self-contained
//! HTML report with inline SVG plots drawn by `plotters`. It deliberately
//! holds no detector of its own — what is measured is `tollgate-detect` —
//! and no command line: `tollgate eval nab|odds|scenarios|all` (in the
//! binary) reads the options, prints the tables and writes the files.
//!
//! # Layout
//!
//! - [`nab`]: [`nab::corpus`] (reading), [`nab::score`] (NAB's rules),
//!   [`nab::run`] (one series through the volume detector), and
//!   [`nab::evaluate`] tying them together.
//! - [`odds`]: reading a table, streaming it through the numeric model,
//!   published figures and bars.
//! - [`metrics`]: AUROC, AUPRC, ROC points.
//! - [`report`]: tables, per-series plots and the HTML page.
//!
//! Invariants: a runner never reads a label, a later row or another series;
//! scores are written one per input row in input order, so every figure can
//! be recomputed independently from `--results-out`.

use std::path::PathBuf;

pub mod metrics;
pub mod nab;
pub mod odds;
pub mod report;

/// Where the shared benchmark data's `sub` folder is (`nab`, `odds`):
/// under `$TOLLGATE_SHARED_DATA`, else `shared/data` beside the repository,
/// else the workplace's `/work/shared/data`; `None` if none has it. For
/// tests, which read the data in place (it is never copied into the
/// repository).
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    std::env::var_os("TOLLGATE_SHARED_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([beside, PathBuf::from("/work/shared/data")])
        .map(|c| c.join(sub))
        .find(|p| p.exists())
}
