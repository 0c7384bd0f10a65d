//! Where a grant comes from, and what an admin's override does to a member's access.

crate::string_enum! {
    /// Who decides a grant.
    pub enum GrantSource("grant source") {
        /// A ThriveCart purchase: its refunds, cancellations, pauses and resumes decide it.
        Thrivecart => "thrivecart",
        /// An admin, by hand: purchases leave it alone.
        Manual => "manual",
    }
}

crate::string_enum! {
    /// An admin's override of one access level for one member. While it stands the member
    /// lacks the level, whatever their purchases and manual grants say; lifting it gives
    /// back what those give.
    pub enum OverrideStatus("override status") {
        /// Taken away.
        Revoked => "revoked",
        /// Suspended for now.
        Paused => "paused",
    }
}
