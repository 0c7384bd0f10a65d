//! Per-app ThriveCart policies.

crate::string_enum! {
    /// What to do with deliveries ThriveCart marks as test mode (`mode=test`).
    #[derive(Default)]
    pub enum TestModePolicy("test mode policy") {
        /// Apply them like live ones, flagging the member and grants as test.
        #[default]
        Process => "process",
        /// Record them as `ignored`.
        Ignore => "ignore",
    }
}

crate::string_enum! {
    /// When a cancelled subscription loses its access.
    #[derive(Default)]
    pub enum CancellationPolicy("cancellation policy") {
        /// As soon as the cancellation arrives.
        #[default]
        Immediate => "immediate",
        /// At the end of the period already paid for (`billing_period_end`).
        PeriodEnd => "period_end",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip() {
        for p in TestModePolicy::ALL {
            assert_eq!(p.as_str().parse(), Ok(*p));
        }
        for p in CancellationPolicy::ALL {
            assert_eq!(p.as_str().parse(), Ok(*p));
        }
        assert!("later".parse::<CancellationPolicy>().is_err());
    }
}
