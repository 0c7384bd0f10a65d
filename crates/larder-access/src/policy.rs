//! Per-app ThriveCart policies.

use std::fmt;
use std::str::FromStr;

/// What to do with deliveries ThriveCart marks as test mode (`mode=test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TestModePolicy {
    /// Apply them like live ones, flagging the member and grants as test.
    #[default]
    Process,
    /// Record them as `ignored`.
    Ignore,
}

/// When a cancelled subscription loses its access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CancellationPolicy {
    /// As soon as the cancellation arrives.
    #[default]
    Immediate,
    /// At the end of the period already paid for (`billing_period_end`).
    PeriodEnd,
}

/// A stored policy value this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy value `{0}`")]
pub struct UnknownPolicy(pub String);

macro_rules! string_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownPolicy;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(UnknownPolicy(other.to_owned())),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(TestModePolicy { Process => "process", Ignore => "ignore" });
string_enum!(CancellationPolicy { Immediate => "immediate", PeriodEnd => "period_end" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip() {
        for p in [TestModePolicy::Process, TestModePolicy::Ignore] {
            assert_eq!(p.as_str().parse(), Ok(p));
        }
        for p in [CancellationPolicy::Immediate, CancellationPolicy::PeriodEnd] {
            assert_eq!(p.as_str().parse(), Ok(p));
        }
        assert!("later".parse::<CancellationPolicy>().is_err());
    }
}
