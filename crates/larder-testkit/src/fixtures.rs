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

/// A fixture with its event time (and, for a payment, its invoice) moved to `at`.
pub fn moved(name: &str, at: i64) -> serde_json::Value {
    let mut doc = thrivecart_json(name);
    if doc.get("date_unix").is_some() {
        doc["date_unix"] = at.to_string().into();
    } else {
        doc["order_timestamp"] = at.to_string().into();
    }
    if doc["event"] == "order.subscription_payment" {
        doc["invoice_id"] = format!("000000102-{at}").into();
    }
    doc
}

/// Jordan's failed rebill at `at`: Avery's fixture, moved to Jordan's order.
pub fn jordans_failed_rebill(at: i64) -> serde_json::Value {
    let mut doc = moved("09-order-rebill-failed", at);
    let jordan = thrivecart_json("02-order-success-bump-and-upsell");
    doc["order_id"] = "4100456".into();
    doc["order"]["id"] = "4100456".into();
    doc["customer"] = jordan["customer"].clone();
    doc
}

/// Deliveries of one order that any arrival order must agree on.
#[derive(Debug, Clone)]
pub struct Storyline {
    pub name: &'static str,
    /// The deliveries, in event order.
    pub deliveries: Vec<serde_json::Value>,
    /// How product-7 of order 4100456 must end: the start of its line in a summary of
    /// `order/key: status past_due=… revoke_at=… member=…`.
    pub expected: &'static str,
}

/// The storylines of Jordan's order (product-7 with its bump and upsell) that exercise
/// every lifecycle fact: purchases, renewals, failed rebills, pauses, resumes, a
/// cancellation and a refund, and renewals of an order whose purchase never came.
pub fn storylines() -> Vec<Storyline> {
    const T0: i64 = 1_772_529_160; // the purchase
    const DAY: i64 = 86_400;
    let story = |name, deliveries, expected| Storyline {
        name,
        deliveries,
        expected,
    };
    vec![
        story(
            "a purchase, then a resume and an older pause",
            vec![
                thrivecart_json("02-order-success-bump-and-upsell"),
                moved("06-order-subscription-resumed", T0 + 20 * DAY),
                moved("05-order-subscription-paused", T0 + 10 * DAY),
            ],
            "4100456/product-7: active",
        ),
        story(
            "pauses and resumes, the last a pause",
            vec![
                thrivecart_json("02-order-success-bump-and-upsell"),
                moved("05-order-subscription-paused", T0 + 5 * DAY),
                moved("06-order-subscription-resumed", T0 + 9 * DAY),
                moved("05-order-subscription-paused", T0 + 12 * DAY),
                moved("03-order-subscription-payment", T0 + 31 * DAY),
            ],
            "4100456/product-7: paused",
        ),
        story(
            "renewals with a failed rebill between them",
            vec![
                thrivecart_json("02-order-success-bump-and-upsell"),
                moved("03-order-subscription-payment", T0 + 31 * DAY),
                jordans_failed_rebill(T0 + 61 * DAY),
                moved("03-order-subscription-payment", T0 + 62 * DAY),
            ],
            "4100456/product-7: active past_due=false",
        ),
        story(
            "a failed rebill last",
            vec![
                thrivecart_json("02-order-success-bump-and-upsell"),
                moved("03-order-subscription-payment", T0 + 31 * DAY),
                jordans_failed_rebill(T0 + 61 * DAY),
                moved("05-order-subscription-paused", T0 + 40 * DAY),
                moved("06-order-subscription-resumed", T0 + 45 * DAY),
            ],
            "4100456/product-7: active past_due=true",
        ),
        story(
            "everything, a cancellation and a refund of the bump included",
            vec![
                thrivecart_json("02-order-success-bump-and-upsell"),
                thrivecart_json("08-order-refund-bump-only"),
                thrivecart_json("03-order-subscription-payment"),
                thrivecart_json("05-order-subscription-paused"),
                thrivecart_json("06-order-subscription-resumed"),
                jordans_failed_rebill(T0 + 48 * DAY),
                thrivecart_json("04-order-subscription-cancelled"),
            ],
            "4100456/product-7: revoked",
        ),
        story(
            "renewals of an order whose purchase never came, then a pause",
            vec![
                moved("03-order-subscription-payment", T0 + 31 * DAY),
                moved("03-order-subscription-payment", T0 + 61 * DAY),
                moved("05-order-subscription-paused", T0 + 70 * DAY),
            ],
            "4100456/product-7: paused past_due=false revoke_at=None member=true",
        ),
    ]
}

/// Every ordering of `0..n` (Heap's algorithm): `n!` of them.
pub fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, a, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            a.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(n, &mut (0..n).collect(), &mut out);
    out
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

    #[test]
    fn permutations_are_every_ordering_once() {
        let mut all = permutations(4);
        assert_eq!(all.len(), 24);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 24);
        assert!(all.iter().all(|p| {
            let mut q = p.clone();
            q.sort();
            q == [0, 1, 2, 3]
        }));
    }
}
