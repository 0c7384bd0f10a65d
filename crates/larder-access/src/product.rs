//! ThriveCart product keys.
//!
//! ThriveCart identifies what was bought by item type and numeric id: a bump `7` is not the
//! product `7`. Larder therefore keys every mapping and grant by the typed key
//! (`product-7`, `bump-7`, `upsell-3`, `downsell-2`), never by the bare number alone.

use std::fmt;
use std::str::FromStr;

/// The kind of line item a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProductKind {
    Product,
    Bump,
    Upsell,
    Downsell,
}

impl ProductKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductKind::Product => "product",
            ProductKind::Bump => "bump",
            ProductKind::Upsell => "upsell",
            ProductKind::Downsell => "downsell",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "product" => Some(ProductKind::Product),
            "bump" => Some(ProductKind::Bump),
            "upsell" => Some(ProductKind::Upsell),
            "downsell" => Some(ProductKind::Downsell),
            _ => None,
        }
    }
}

/// Why a product key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a ThriveCart product: use a product ID such as `7`, or a typed key such as \
     `product-7`, `bump-7`, `upsell-3` or `downsell-2`"
)]
pub struct InvalidProduct(pub String);

/// A typed ThriveCart product key such as `bump-7`.
///
/// The id is kept as digits, not an integer: ThriveCart ids are strings on the wire and may
/// exceed 2^53, so nothing here rounds them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProductKey {
    kind: ProductKind,
    id: String,
}

/// Longest numeric id accepted, leading zeros aside (u64 has 20 digits; leave room, refuse
/// nonsense). The APIs publish the same rule as a `pattern`.
const MAX_ID_DIGITS: usize = 24;

impl ProductKey {
    /// Parses what an admin types: a bare ThriveCart product ID (`7` means `product-7`) or a
    /// typed key. Surrounding whitespace is ignored; leading zeros are dropped so `07` and `7`
    /// are one product.
    pub fn parse(raw: &str) -> Result<Self, InvalidProduct> {
        let trimmed = raw.trim();
        let invalid = || InvalidProduct(raw.to_owned());
        let (kind, digits) = match trimmed.split_once('-') {
            Some((kind, digits)) => (ProductKind::parse(kind).ok_or_else(invalid)?, digits),
            None => (ProductKind::Product, trimmed),
        };
        if digits.is_empty()
            || digits.len() > 2 * MAX_ID_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let canonical = digits.trim_start_matches('0');
        if canonical.is_empty() || canonical.len() > MAX_ID_DIGITS {
            // ThriveCart ids start at 1.
            return Err(invalid());
        }
        Ok(Self {
            kind,
            id: canonical.to_owned(),
        })
    }

    pub fn kind(&self) -> ProductKind {
        self.kind
    }

    /// The numeric ThriveCart id, as digits.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl TryFrom<String> for ProductKey {
    type Error = InvalidProduct;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl serde::Serialize for ProductKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ProductKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.kind.as_str(), self.id)
    }
}

impl fmt::Debug for ProductKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProductKey({self})")
    }
}

impl FromStr for ProductKey {
    type Err = InvalidProduct;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_spellings_and_their_stored_form() {
        let cases = [
            ("7", "product-7"),
            (" 7 ", "product-7"),
            ("007", "product-7"),
            ("product-7", "product-7"),
            ("bump-7", "bump-7"),
            ("upsell-3", "upsell-3"),
            ("downsell-2", "downsell-2"),
            ("18446744073709551617", "product-18446744073709551617"),
        ];
        for (raw, stored) in cases {
            let key = ProductKey::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(key.to_string(), stored, "{raw}");
        }
    }

    #[test]
    fn rejected_spellings() {
        for raw in [
            "",
            " ",
            "0",
            "-7",
            "7-",
            "product-",
            "bundle-7",
            "Product-7",
            "bump_7",
            "bump-7a",
            "1.5",
            "+7",
            "product--7",
            "bump-0",
            &"9".repeat(25),
        ] {
            assert_eq!(
                ProductKey::parse(raw),
                Err(InvalidProduct(raw.into())),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn a_bump_is_not_the_product_with_the_same_number() {
        assert_ne!(ProductKey::parse("bump-7"), ProductKey::parse("7"));
    }
}
