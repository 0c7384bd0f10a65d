//! The upgrade test each backend runs: items an older release wrote, which kept no
//! lifecycle times, keep their state, whether it wrote them before the upgrade or while
//! it still ran beside the new release (a rolling upgrade, a rollback). The backend makes
//! its rows look like that release left them between [`older_release_items`] and
//! [`older_release_items_keep_their_state`] (it alone can reach under the `Store`):
//! no times on the items of [`OlderRelease::before_upgrade`], and product-7 of
//! [`OlderRelease::resumed_beside`] set active at [`RESUMED_BESIDE_AT`], its grants too,
//! as that release resumed it.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::contract::{deliver, holdings, shop};
use crate::*;

/// Items as an older release left them.
#[derive(Debug)]
pub struct OlderRelease {
    paused: AppId,
    resumed: AppId,
    resumed_beside: AppId,
}

impl OlderRelease {
    /// The apps whose items lose their lifecycle times.
    pub fn before_upgrade(&self) -> [AppId; 2] {
        [self.paused, self.resumed]
    }

    /// The app whose paused item the older release resumes.
    pub fn resumed_beside(&self) -> AppId {
        self.resumed_beside
    }
}

const T0: i64 = 1_772_529_160; // the fixtures' purchase
const DAY: i64 = 86_400;
/// When the older release resumed [`OlderRelease::resumed_beside`]'s item (unix seconds).
pub const RESUMED_BESIDE_AT: i64 = T0 + 12 * DAY;

/// One app whose item is paused (since T0 + 10 days), one whose item was paused and resumed
/// (on T0 + 9 days).
pub async fn older_release_items(store: &dyn Store) -> OlderRelease {
    use larder_testkit::fixtures::{moved, thrivecart_json};
    let (paused, _) = shop(store).await;
    deliver(
        store,
        paused,
        &thrivecart_json("02-order-success-bump-and-upsell"),
    )
    .await;
    deliver(
        store,
        paused,
        &moved("05-order-subscription-paused", T0 + 10 * DAY),
    )
    .await;
    let (resumed, _) = shop(store).await;
    deliver(
        store,
        resumed,
        &thrivecart_json("02-order-success-bump-and-upsell"),
    )
    .await;
    deliver(
        store,
        resumed,
        &moved("05-order-subscription-paused", T0 + 5 * DAY),
    )
    .await;
    deliver(
        store,
        resumed,
        &moved("06-order-subscription-resumed", T0 + 9 * DAY),
    )
    .await;
    // Paused by this release; the older one resumes it (the backend does that).
    let (resumed_beside, _) = shop(store).await;
    deliver(
        store,
        resumed_beside,
        &thrivecart_json("02-order-success-bump-and-upsell"),
    )
    .await;
    deliver(
        store,
        resumed_beside,
        &moved("05-order-subscription-paused", T0 + 10 * DAY),
    )
    .await;
    OlderRelease {
        paused,
        resumed,
        resumed_beside,
    }
}

/// Then a renewal leaves the paused item paused, and a retried pause older than the resume
/// leaves a resumed item active, as does a renewal.
pub async fn older_release_items_keep_their_state(store: &dyn Store, older: OlderRelease) {
    use larder_testkit::fixtures::moved;
    let renewed = deliver(
        store,
        older.paused,
        &moved("03-order-subscription-payment", T0 + 31 * DAY),
    )
    .await;
    let held = holdings(store, older.paused).await.0;
    assert!(
        held.contains(&"4100456/product-7: paused past_due=false".to_owned()),
        "{held:#?} after {renewed:?}"
    );
    let retried = deliver(
        store,
        older.resumed,
        &moved("05-order-subscription-paused", T0 + 7 * DAY),
    )
    .await;
    let held = holdings(store, older.resumed).await.0;
    assert!(
        held.contains(&"4100456/product-7: active past_due=false".to_owned()),
        "{held:#?} after {retried:?}"
    );
    for doc in [
        moved("05-order-subscription-paused", T0 + 11 * DAY),
        moved("03-order-subscription-payment", T0 + 31 * DAY),
    ] {
        let after = deliver(store, older.resumed_beside, &doc).await;
        let held = holdings(store, older.resumed_beside).await.0;
        assert!(
            held.contains(&"4100456/product-7: active past_due=false".to_owned()),
            "{held:#?} after {after:?}"
        );
    }
}
