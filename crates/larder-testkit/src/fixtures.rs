//! The ThriveCart deliveries every suite tests against, in one place: thirteen deliveries,
//! each as the form body ThriveCart sends by default and as its JSON twin (see
//! `fixtures/thrivecart/README.md`). They are compiled in, so a test never depends on the
//! directory it runs from.

/// One delivery in both encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixture {
    /// The file stem, `02-order-success-bump-and-upsell`.
    pub name: &'static str,
    /// The `application/x-www-form-urlencoded` body.
    pub form: &'static str,
    /// The `application/json` body.
    pub json: &'static str,
}

impl Fixture {
    /// The JSON twin, parsed.
    pub fn json_value(&self) -> serde_json::Value {
        serde_json::from_str(self.json)
            .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", self.name))
    }

    /// The body in `encoding`.
    pub fn body(&self, encoding: Encoding) -> &'static str {
        match encoding {
            Encoding::Form => self.form,
            Encoding::Json => self.json,
        }
    }
}

/// The two encodings ThriveCart posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Form,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Form => "application/x-www-form-urlencoded",
            Encoding::Json => "application/json",
        }
    }
}

/// The secret word every fixture carries in `thrivecart_secret`.
pub const SECRET_WORD: &str = "K7QX2M9PLD4R";

macro_rules! fixtures {
    ($($name:literal),+ $(,)?) => {
        /// Every ThriveCart fixture, in file order.
        pub const THRIVECART: &[Fixture] = &[$(
            Fixture {
                name: $name,
                form: include_str!(concat!("../fixtures/thrivecart/", $name, ".form")),
                json: include_str!(concat!("../fixtures/thrivecart/", $name, ".json")),
            }
        ),+];
    };
}

fixtures!(
    "01-order-success-single-product",
    "02-order-success-bump-and-upsell",
    "03-order-subscription-payment",
    "04-order-subscription-cancelled",
    "05-order-subscription-paused",
    "06-order-subscription-resumed",
    "07-order-refund-full",
    "08-order-refund-bump-only",
    "09-order-rebill-failed",
    "10-affiliate-commission-earned",
    "11-order-success-test-mode",
    "12-order-success-repeat-customer-blank-name",
    "13-cart-abandoned",
);

/// The fixture called `name`; panics for a name that is not one.
pub fn thrivecart(name: &str) -> &'static Fixture {
    THRIVECART
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no ThriveCart fixture is called {name}"))
}

/// The JSON twin of the fixture called `name`, parsed.
pub fn thrivecart_json(name: &str) -> serde_json::Value {
    thrivecart(name).json_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/thrivecart");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let path = e.unwrap().path();
                matches!(path.extension()?.to_str()?, "json" | "form")
                    .then(|| path.file_stem()?.to_str().map(str::to_owned))?
            })
            .collect();
        on_disk.sort();
        on_disk.dedup();
        let listed: Vec<&str> = THRIVECART.iter().map(|f| f.name).collect();
        assert_eq!(on_disk, listed);
        for f in THRIVECART {
            assert!(f.json.contains(SECRET_WORD), "{}", f.name);
        }
    }
}
