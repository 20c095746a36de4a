//! Many / medium / few-shot groups of label bins by their training count (methods.md §4).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// A bin's shot group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shot {
    /// More than `many` training samples.
    Many,
    /// Between the thresholds.
    Medium,
    /// Fewer than `few` training samples (empty bins included).
    Few,
}

impl Shot {
    /// The three groups in report order.
    pub const ALL: [Shot; 3] = [Shot::Many, Shot::Medium, Shot::Few];

    /// Lower-case name (`many`, `medium`, `few`).
    pub fn name(self) -> &'static str {
        match self {
            Shot::Many => "many",
            Shot::Medium => "medium",
            Shot::Few => "few",
        }
    }
}

impl fmt::Display for Shot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Shot thresholds on training counts: many `> many` (default 100), few `< few` (default 20),
/// the DIR benchmark's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShotThresholds {
    /// A bin is many-shot with strictly more training samples than this.
    pub many: u64,
    /// A bin is few-shot with strictly fewer training samples than this.
    pub few: u64,
}

impl Default for ShotThresholds {
    fn default() -> Self {
        Self { many: 100, few: 20 }
    }
}

impl ShotThresholds {
    /// Checks `few <= many + 1`, so no count is both many and few.
    pub fn validate(&self) -> Result<()> {
        if self.few > self.many.saturating_add(1) {
            return invalid(
                "few-shot threshold",
                self.few,
                "at most the many-shot threshold + 1",
            );
        }
        Ok(())
    }

    /// The shot of a bin with `count` training samples.
    pub fn shot(&self, count: u64) -> Shot {
        if count > self.many {
            Shot::Many
        } else if count < self.few {
            Shot::Few
        } else {
            Shot::Medium
        }
    }

    /// The shot of every bin.
    pub fn shots(&self, counts: &[u64]) -> Vec<Shot> {
        counts.iter().map(|&c| self.shot(c)).collect()
    }
}
