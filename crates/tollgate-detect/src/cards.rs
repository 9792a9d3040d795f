//! Model cards: per-source cold-start priors and parameters, holding no
//! tenant data.
//!
//! Each card lives in `models/<source>.toml` at the repository root, documents
//! the features the source contributes and which detector reads them, and
//! gives the numeric model's parameters and prior means/spreads (used before
//! a tenant has enough events for its first fit). The built-in cards are
//! compiled in with `include_str!`; the binary may read overrides from disk
//! and pass the text to [`ModelCard::parse`] — this module never touches the
//! file system itself.

use serde::{Deserialize, Serialize};
use tollgate_events::Source;

use crate::numeric::D;

/// Mean and spread of one numeric feature before any tenant data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    pub mean: f64,
    pub std: f64,
}

/// Priors for the numeric vector, in the order of [`crate::numeric::FEATURE_NAMES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericPrior {
    pub ln_bytes_in: Prior,
    pub ln_bytes_out: Prior,
    pub ln_latency_ms: Prior,
    pub ln_rate_per_min: Prior,
    pub error_ratio: Prior,
    pub ln_new_destinations: Prior,
}

impl NumericPrior {
    pub fn as_array(&self) -> [Prior; D] {
        [
            self.ln_bytes_in,
            self.ln_bytes_out,
            self.ln_latency_ms,
            self.ln_rate_per_min,
            self.error_ratio,
            self.ln_new_destinations,
        ]
    }
}

/// The largest reservoir a card may ask for.
pub const MAX_RESERVOIR: usize = 4096;

/// Parameters of the per-tenant, per-source numeric model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericCard {
    /// Gaussian mixture components (1..=4).
    pub components: usize,
    /// Vectors kept in the recency-biased reservoir the mixture is fitted on.
    pub reservoir: usize,
    /// Events of this source before the first fit.
    pub first_fit_after: u64,
    /// Events between refits once the model is mature.
    pub refit_every: u64,
    /// While young, the model refits each time its source's event count
    /// has grown by this factor (`first_fit_after`, × this, …) until fits
    /// are `refit_every` apart. Optional in a card; 4 when absent (2, the
    /// earlier schedule, cost 7 % more detection instructions and no
    /// scenario lost recall when it changed; see ARCHITECTURE.md).
    #[serde(default = "default_refit_growth")]
    pub refit_growth: u64,
    /// Mean age (in events) of a reservoir member once the reservoir is full.
    pub recency_window: u64,
    /// Added to the covariance diagonal (standardized units).
    pub reg_covariance: f64,
    pub max_iterations: u64,
    pub tolerance: f64,
    /// Restarts of the k-means that seeds each EM fit (the best clustering
    /// is kept). Optional in a card; 1 when absent. linfa's own default is
    /// 10, which made the seeding 59 % of a refit's cost for no measured
    /// gain in detection (see ARCHITECTURE.md, numeric model).
    #[serde(default = "default_kmeans_restarts")]
    pub kmeans_restarts: usize,
    pub prior: NumericPrior,
}

fn default_kmeans_restarts() -> usize {
    1
}

fn default_refit_growth() -> u64 {
    4
}

/// Documentation of one feature the source contributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDoc {
    pub name: String,
    pub detectors: Vec<String>,
    pub description: String,
}

/// One source's model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub source: Source,
    pub description: String,
    pub numeric: NumericCard,
    #[serde(default)]
    pub features: Vec<FeatureDoc>,
}

/// Why a model card was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CardError {
    #[error("model card does not parse: {0}")]
    Parse(String),
    #[error("model card for {src}: {problem}")]
    Invalid { src: Source, problem: String },
}

impl ModelCard {
    /// Parse and validate a card from TOML text.
    pub fn parse(text: &str) -> Result<ModelCard, CardError> {
        let card: ModelCard = toml::from_str(text).map_err(|e| CardError::Parse(e.to_string()))?;
        card.validate()?;
        Ok(card)
    }

    fn validate(&self) -> Result<(), CardError> {
        let bad = |p: &str| {
            Err(CardError::Invalid {
                src: self.source,
                problem: p.to_string(),
            })
        };
        let n = &self.numeric;
        if !(1..=crate::numeric::K_MAX).contains(&n.components) {
            return bad("numeric.components must be 1..=4");
        }
        if !(32..=MAX_RESERVOIR).contains(&n.reservoir) {
            return bad(&format!("numeric.reservoir must be 32..={MAX_RESERVOIR}"));
        }
        if n.first_fit_after < n.reservoir as u64 / 2 || n.refit_every == 0 || n.recency_window == 0
        {
            return bad("numeric.first_fit_after must be >= reservoir/2; refit_every and recency_window > 0");
        }
        if !(2..=16).contains(&n.refit_growth) {
            return bad("numeric.refit_growth must be 2..=16");
        }
        if !(n.reg_covariance > 0.0
            && n.tolerance > 0.0
            && n.max_iterations > 0
            && n.kmeans_restarts > 0)
        {
            return bad(
                "numeric.reg_covariance, tolerance, max_iterations and kmeans_restarts must be > 0",
            );
        }
        if n.prior
            .as_array()
            .iter()
            .any(|p| p.std.is_nan() || p.std <= 0.0 || !p.mean.is_finite())
        {
            return bad("every prior needs a finite mean and std > 0");
        }
        Ok(())
    }
}

/// The cards for all sources.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCards {
    cards: Vec<ModelCard>,
}

/// The built-in card texts, as shipped in `models/`.
pub const BUILTIN: [(Source, &str); 5] = [
    (Source::Apigw, include_str!("../../../models/apigw.toml")),
    (
        Source::ZscalerWeb,
        include_str!("../../../models/zscaler-web.toml"),
    ),
    (
        Source::ZscalerFw,
        include_str!("../../../models/zscaler-fw.toml"),
    ),
    (
        Source::ZscalerDns,
        include_str!("../../../models/zscaler-dns.toml"),
    ),
    (Source::Zpa, include_str!("../../../models/zpa.toml")),
];

impl ModelCards {
    /// The cards compiled into the crate (a test checks they all parse).
    pub fn builtin() -> ModelCards {
        let cards = BUILTIN
            .iter()
            .map(|(s, text)| {
                let c = ModelCard::parse(text).unwrap_or_else(|e| panic!("built-in card {s}: {e}"));
                assert_eq!(c.source, *s, "built-in card file names its source");
                c
            })
            .collect();
        ModelCards { cards }
    }

    pub fn get(&self, s: Source) -> &ModelCard {
        &self.cards[source_index(s)]
    }

    /// Replace one source's card.
    pub fn set(&mut self, card: ModelCard) {
        let i = source_index(card.source);
        self.cards[i] = card;
    }
}

pub(crate) fn source_index(s: Source) -> usize {
    match s {
        Source::Apigw => 0,
        Source::ZscalerWeb => 1,
        Source::ZscalerFw => 2,
        Source::ZscalerDns => 3,
        Source::Zpa => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_card_parses_and_names_its_source() {
        let cards = ModelCards::builtin();
        for s in Source::ALL {
            let c = cards.get(s);
            assert_eq!(c.source, s);
            assert!(!c.features.is_empty(), "{s} card documents its features");
            for f in &c.features {
                for d in &f.detectors {
                    assert!(
                        crate::Detector::ALL.iter().any(|x| x.as_str() == d),
                        "{s}: feature {} names unknown detector {d}",
                        f.name
                    );
                }
            }
        }
    }

    #[test]
    fn overrides_are_validated() {
        let mut text = BUILTIN[0].1.replace("components = 3", "components = 9");
        assert!(matches!(
            ModelCard::parse(&text),
            Err(CardError::Invalid { .. })
        ));
        text = BUILTIN[0].1.replace("components = 3", "components = 2");
        let mut cards = ModelCards::builtin();
        cards.set(ModelCard::parse(&text).unwrap());
        assert_eq!(cards.get(Source::Apigw).numeric.components, 2);
        assert!(matches!(
            ModelCard::parse("source = 1"),
            Err(CardError::Parse(_))
        ));
        let extra = format!("{}\nunknown_key = 1\n", BUILTIN[0].1);
        assert!(ModelCard::parse(&extra).is_err());
    }

    /// An optional card field: the built-in card states it as `line`;
    /// without it the card parses with `default`; `other` parses to
    /// `other_value`; every line in `bad` is rejected as invalid.
    fn optional_field(
        line: &str,
        default: u64,
        other: &str,
        other_value: u64,
        bad: &[&str],
        get: fn(&NumericCard) -> u64,
    ) {
        let card = BUILTIN[0].1;
        assert!(card.contains(&format!("{line}\n")), "{line}");
        let absent = ModelCard::parse(&card.replace(&format!("{line}\n"), "")).unwrap();
        assert_eq!(get(&absent.numeric), default, "{line} absent");
        let set = ModelCard::parse(&card.replace(line, other)).unwrap();
        assert_eq!(get(&set.numeric), other_value, "{other}");
        for b in bad {
            assert!(
                matches!(
                    ModelCard::parse(&card.replace(line, b)),
                    Err(CardError::Invalid { .. })
                ),
                "{b}"
            );
        }
    }

    #[test]
    fn kmeans_restarts_is_optional_and_positive() {
        optional_field(
            "kmeans_restarts = 1",
            1,
            "kmeans_restarts = 10",
            10,
            &["kmeans_restarts = 0"],
            |n| n.kmeans_restarts as u64,
        );
    }

    #[test]
    fn refit_growth_is_optional_and_bounded() {
        optional_field(
            "refit_growth = 4",
            4,
            "refit_growth = 2",
            2,
            &["refit_growth = 1", "refit_growth = 17"],
            |n| n.refit_growth,
        );
    }
}
