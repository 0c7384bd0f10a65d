pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a [`crate::Store`] call. API layers map each variant to one status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object in this app (which includes: it belongs to another app).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken; the text names what is duplicated.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A mapping named an access level that is not one of the app's.
    #[error("unknown access level")]
    UnknownAccessLevel,
    /// The access level is still used by a mapping or a live grant.
    #[error("access level in use")]
    AccessLevelInUse,
    /// The grant comes from a ThriveCart purchase; purchases, refunds and cancellations
    /// decide it, not an admin.
    #[error("grant managed by ThriveCart")]
    GrantManagedByThrivecart,
    /// The database could not be reached or timed out; retrying later may work.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else: a bug or corrupt data.
    #[error("database error")]
    Internal(#[source] BoxError),
}

impl StoreError {
    pub fn internal(err: impl Into<BoxError>) -> Self {
        StoreError::Internal(err.into())
    }

    /// The answer to each of `n` jobs of a batch none of which could be kept: the same
    /// `Unavailable`, saying `why`, for every one (a retry of any of them is safe).
    pub fn unavailable_each<T>(why: &str, n: usize) -> Vec<Result<T, StoreError>> {
        (0..n)
            .map(|_| Err(StoreError::Unavailable(why.to_owned().into())))
            .collect()
    }
}

/// An error and every cause under it, joined (`database error: error returned from
/// database: value too long…`), for log lines: the top line alone seldom says what happened.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_name_every_level() {
        let err = StoreError::internal(std::io::Error::other("disk on fire"));
        assert_eq!(causes(&err), "database error: disk on fire");
        assert_eq!(causes(&StoreError::NotFound), "not found");
    }
}
