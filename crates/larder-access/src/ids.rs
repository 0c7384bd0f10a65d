//! Typed ids. Every id is a UUIDv7: unique, opaque to clients, and ordered by creation time,
//! which keeps keyset pagination stable.

use std::fmt;
use std::str::FromStr;

/// An id that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id")]
pub struct ParseIdError;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh id, ordered after every id made before it in this process.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            pub fn from_uuid(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.as_hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(uuid: uuid::Uuid) -> Self {
                Self(uuid)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseIdError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the canonical hyphenated form: one id, one spelling.
                if s.len() != 36 {
                    return Err(ParseIdError);
                }
                uuid::Uuid::parse_str(s).map(Self).map_err(|_| ParseIdError)
            }
        }
    };
}

typed_id!(
    /// A tenant: one app selling memberships through ThriveCart.
    AppId
);
typed_id!(
    /// An app's API key (the key itself is never kept, only its hash).
    ApiKeyId
);
typed_id!(
    /// An access level of one app.
    AccessLevelId
);
typed_id!(
    /// A product mapping: one product key to one access level.
    MappingId
);
typed_id!(
    /// A member of one app.
    MemberId
);
typed_id!(
    /// A grant of an access level to a member.
    GrantId
);
typed_id!(
    /// One delivery attempt: an entry of the activity log.
    DeliveryId
);
typed_id!(
    /// A message to a member, in the outbox.
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let id = AppId::new();
        assert_eq!(id.to_string().parse::<AppId>(), Ok(id));
    }

    #[test]
    fn ids_reject_other_spellings() {
        let id = AppId::new();
        let simple = id.as_uuid().simple().to_string();
        assert_eq!(simple.parse::<AppId>(), Err(ParseIdError));
        assert_eq!("".parse::<AppId>(), Err(ParseIdError));
        assert_eq!("not-an-id".parse::<AppId>(), Err(ParseIdError));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let a = MappingId::new();
        let b = MappingId::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }
}
