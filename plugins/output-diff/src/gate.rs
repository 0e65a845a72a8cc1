//! `--output-diff-max-regressions N` or `N%`: the run fails its gate (exit status 3) when the
//! regressions exceed it.

/// Why a gate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// Neither a count nor a percentage.
    #[error("{0:?} is neither a number of regressions (5) nor a percentage of pairs (0.5%)")]
    Shape(String),
}

/// The most regressions a run may have.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gate {
    /// At most this many.
    Count(u64),
    /// At most this percentage of the pairs compared.
    Percent(f64),
}

impl Gate {
    /// Parses `5` or `0.5%`.
    pub fn parse(text: &str) -> Result<Gate, GateError> {
        let shape = || GateError::Shape(text.to_string());
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| shape())?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(shape());
                }
                Ok(Gate::Percent(p))
            }
            None => text.parse().map(Gate::Count).map_err(|_| shape()),
        }
    }

    /// True when `regressions` of `pairs` exceed the gate.
    pub fn exceeded(self, regressions: u64, pairs: u64) -> bool {
        match self {
            Gate::Count(most) => regressions > most,
            Gate::Percent(p) => pairs > 0 && regressions as f64 * 100.0 / pairs as f64 > p,
        }
    }

    /// As the user wrote it.
    pub fn describe(self) -> String {
        match self {
            Gate::Count(n) => n.to_string(),
            Gate::Percent(p) => format!("{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentages() {
        assert!(!Gate::parse("0").unwrap().exceeded(0, 10));
        assert!(Gate::parse("0").unwrap().exceeded(1, 10));
        let half = Gate::parse("50%").unwrap();
        assert!(!half.exceeded(5, 10) && half.exceeded(6, 10) && !half.exceeded(0, 0));
        for bad in ["", "x", "-1", "101%", "%"] {
            assert!(Gate::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Gate::parse("1.5%").unwrap().describe(), "1.5%");
    }
}
